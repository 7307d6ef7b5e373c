"""Every ``AGENTBUS_*`` variable the chart sets is one the platform reads: pydantic-settings ignores names it does
not know (``extra="ignore"``), so a misspelt one would be dropped without a word and the service would run on
its default. Known names are the fields of ``Settings``, the options ``agentbus init`` reads from the
environment, and the variables the agent file's credentials name (``{env: NAME}``, the chart's ``secretEnv``).
"""

from __future__ import annotations

import re
from typing import Any

import typer.main
import yaml

from agentbus.cli import app
from agentbus.settings import Settings
from tests.k8s.helpers import CHART, by_kind, containers

SETTINGS = {f"AGENTBUS_{name.upper()}" for name in Settings.model_fields}


def init_envvars() -> set[str]:
    """The environment variables ``agentbus init``'s options read."""
    command = typer.main.get_command(app)
    init = command.commands["init"]  # type: ignore[attr-defined]
    return {p.envvar for p in init.params if isinstance(p.envvar, str)}


def env_refs(node: Any) -> set[str]:
    """The names of ``{env: NAME}`` references anywhere in the agent file."""
    if isinstance(node, dict):
        found = {str(node["env"])} if isinstance(node.get("env"), str) else set()
        return found.union(*(env_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(env_refs(v) for v in node))
    return set()


def unknown_names(docs: list[dict[str, Any]]) -> dict[str, set[str]]:
    [cm] = [d for d in by_kind(docs, "ConfigMap") if "agentbus.yaml" in d.get("data", {})]
    referenced = env_refs(yaml.safe_load(cm["data"]["agentbus.yaml"]))
    unknown: dict[str, set[str]] = {}
    for doc in by_kind(docs, "Deployment") + by_kind(docs, "Job"):
        known = SETTINGS | referenced | (init_envvars() if doc["kind"] == "Job" else set())
        for c in containers(doc):
            names = {e["name"] for e in c.get("env", []) if e["name"].startswith("AGENTBUS_")}
            if names - known:
                unknown[f"{doc['metadata']['name']}/{c['name']}"] = names - known
    return unknown


def test_every_agentbus_variable_of_the_production_render_is_read(production_docs: list[dict[str, Any]]) -> None:
    assert unknown_names(production_docs) == {}


def test_every_agentbus_variable_of_the_default_render_is_read(default_docs: list[dict[str, Any]]) -> None:
    assert unknown_names(default_docs) == {}


def test_every_agentbus_variable_the_templates_name_is_a_setting() -> None:
    """Also the ones set only under values neither render uses (client certificates, an embeddings key)."""
    named = {m for path in (CHART / "templates").glob("*")
             for m in re.findall(r"AGENTBUS_[A-Z0-9_]+", path.read_text(encoding="utf-8"))}
    assert named and named - SETTINGS == set()
