"""The tested example of a channel guide: the ``yaml`` block of ``docs/channels/<name>.md`` with ``tenants:``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentbus.config import PlatformConfig, parse_config

DOCS = Path(__file__).resolve().parents[2] / "docs" / "channels"


def doc_yaml(name: str) -> dict[str, Any]:
    text = (DOCS / f"{name}.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "tenants:" in b]
    assert len(blocks) == 1, f"docs/channels/{name}.md needs exactly one complete yaml example"
    return yaml.safe_load(blocks[0])


def _env_refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        if set(node) <= {"env", "default"} and isinstance(node.get("env"), str):
            return [node["env"]] if "default" not in node else []
        return [n for v in node.values() for n in _env_refs(v)]
    if isinstance(node, list):
        return [n for v in node for n in _env_refs(v)]
    return []


def doc_config(name: str, monkeypatch: pytest.MonkeyPatch) -> PlatformConfig:
    """Parse the example with every credential it references set to a dummy value."""
    raw = doc_yaml(name)
    for var in _env_refs(raw):
        monkeypatch.setenv(var, f"test-{var.lower()}")
    return parse_config(raw, source=f"docs/channels/{name}.md")
