"""Is a change to a committed event schema version compatible?

Within one version, producers and consumers of different releases must read each other's events (a
rolling upgrade has both). Allowed: adding an optional field. Refused: removing a field, making a field
required or no longer required, changing a field's type or its allowed values. Anything else is a new
version with an upcaster (see ``agentbus.events.UPCASTERS``).
"""

from __future__ import annotations

from typing import Any


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while "$ref" in schema and seen < 32:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = root.get("$defs", {}).get(name, {})
        seen += 1
    return schema


def _shape(schema: dict[str, Any], root: dict[str, Any]) -> tuple[Any, ...]:
    """What values a schema admits, ignoring titles, descriptions and defaults."""
    s = _resolve(schema, root)
    if "anyOf" in s:
        return ("anyOf", tuple(sorted(repr(_shape(x, root)) for x in s["anyOf"])))
    if "const" in s:
        return ("enum", (repr(s["const"]),))
    if "enum" in s:
        return ("enum", tuple(sorted(repr(v) for v in s["enum"])))
    t = s.get("type")
    if t == "array":
        items = s.get("items") or s.get("prefixItems") or {}
        return ("array", repr(_shape(items, root)) if isinstance(items, dict) else repr(items))
    if t == "object" and "properties" in s:
        return ("object", id(s))
    return (t, s.get("format"), s.get("pattern"))


def incompatibilities(old: dict[str, Any], new: dict[str, Any], path: str = "") -> list[str]:
    return _compare(old, old, new, new, path or "$")


def _compare(o: dict[str, Any], oroot: dict[str, Any], n: dict[str, Any], nroot: dict[str, Any],
             path: str) -> list[str]:
    o, n = _resolve(o, oroot), _resolve(n, nroot)
    problems: list[str] = []
    if "properties" in o or "properties" in n:
        op, np_ = o.get("properties", {}), n.get("properties", {})
        for name in op:
            if name not in np_:
                problems.append(f"{path}.{name}: removed")
        oreq, nreq = set(o.get("required", ())), set(n.get("required", ()))
        for name in sorted(nreq - oreq):
            problems.append(f"{path}.{name}: became required")
        for name in sorted(oreq - nreq):
            if name in np_:
                problems.append(f"{path}.{name}: no longer required")
        for name in op:
            if name in np_:
                problems += _compare(op[name], oroot, np_[name], nroot, f"{path}.{name}")
        return problems
    if "anyOf" in o and "anyOf" in n and len(o["anyOf"]) == len(n["anyOf"]):
        for i, (a, b) in enumerate(zip(o["anyOf"], n["anyOf"], strict=True)):
            problems += _compare(a, oroot, b, nroot, f"{path}|{i}")
        return problems
    if o.get("type") == "array" and n.get("type") == "array":
        oi, ni = o.get("items"), n.get("items")
        if isinstance(oi, dict) and isinstance(ni, dict):
            return _compare(oi, oroot, ni, nroot, f"{path}[]")
    if _shape(o, oroot) != _shape(n, nroot):
        problems.append(f"{path}: type or allowed values changed")
    return problems
