"""What a new configuration changes, entity by entity, in words an operator reads before applying it.

Lists of entities (tenants, agents, models, channels, jobs, MCP servers, HTTP tools, users) are compared by
their id, so a reordered file changes nothing; inside an entity each changed key is named with its old and
new value. Credentials are ``{env: NAME}`` references, so nothing shown here is a secret.
"""

from __future__ import annotations

from typing import Any

import orjson

ID_KEYS = {"mcp_servers": "name", "http_tools": "name", "models": "name"}
LISTS = ("tenants", "agents", "models", "channels", "jobs", "mcp_servers", "http_tools")
SHOWN = 80  # characters of a value shown in a change


def _show(value: Any) -> str:
    text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode() if not isinstance(value, str) else repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


def _by_id(section: str, items: Any) -> dict[str, Any]:
    key = ID_KEYS.get(section, "id")
    out: dict[str, Any] = {}
    for i, item in enumerate(items if isinstance(items, list) else []):
        ident = item.get(key) if isinstance(item, dict) else None
        out[str(ident) if ident is not None else f"#{i}"] = item
    return out


def _keys(prefix: str, old: Any, new: Any) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            if k not in new:
                out.append(f"{prefix}.{k}: removed (was {_show(old[k])})")
            elif k not in old:
                out.append(f"{prefix}.{k}: set to {_show(new[k])}")
            elif old[k] != new[k]:
                out += _keys(f"{prefix}.{k}", old[k], new[k])
        return out
    return [f"{prefix}: {_show(old)} → {_show(new)}"] if old != new else []


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """One line per added, removed or changed entity key; empty when the two are the same configuration."""
    out: list[str] = []
    for section in LISTS:
        before, after = _by_id(section, old.get(section) or []), _by_id(section, new.get(section) or [])
        for ident in after.keys() - before.keys():
            out.append(f"+ {section}.{ident}")
        for ident in before.keys() - after.keys():
            out.append(f"- {section}.{ident}")
        for ident in sorted(before.keys() & after.keys()):
            out += [f"~ {line}" for line in _keys(f"{section}.{ident}", before[ident], after[ident])]
    for section in sorted((set(old) | set(new)) - set(LISTS), key=str):
        out += [f"~ {line}" for line in _keys(section, old.get(section), new.get(section))]
    return sorted(out, key=lambda line: (line[2:].split(".")[0], line[2:]))
