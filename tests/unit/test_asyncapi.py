"""The AsyncAPI document: complete, internally consistent, and the same as the services' handler tables."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from agentbus.asyncapi import channel_id, contract, contracts, document
from agentbus.events import CATALOGUE, DeadLettered, MessageReceived
from agentbus.service import ServiceParts, check_contract
from agentbus.settings import SERVICES

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"


def _resolve(doc: dict, ref: str) -> object:
    node: object = doc
    for part in ref.removeprefix("#/").split("/"):
        assert isinstance(node, dict) and part in node, f"dangling reference {ref}"
        node = node[part]
    return node


def test_every_event_version_is_a_channel_with_its_committed_schema() -> None:
    doc = document()
    assert doc["asyncapi"] == "3.0.0"
    assert set(doc["channels"]) == {channel_id(t, v) for (t, v) in CATALOGUE}
    for (t, v) in CATALOGUE:
        cid = channel_id(t, v)
        assert doc["channels"][cid]["address"] == "{prefix}." + f"{t}.v{v}"
        ref = doc["components"]["messages"][cid]["payload"]["schema"]["$ref"]
        assert (SCHEMAS / ref.removeprefix("./")).is_file()


def test_operations_reference_their_channel_and_its_message() -> None:
    doc = document()
    for name, op in doc["operations"].items():
        channel = _resolve(doc, op["channel"]["$ref"])
        assert op["action"] in ("send", "receive"), name
        for m in op["messages"]:
            assert m["$ref"].startswith(op["channel"]["$ref"] + "/messages/"), name
            _resolve(doc, m["$ref"])
        assert isinstance(channel, dict)


def test_each_service_receives_what_it_subscribes_to_and_sends_what_it_publishes() -> None:
    ops = document()["operations"]
    for c in contracts():
        for cls in c.subscribes:
            versions = [v for (t, v) in CATALOGUE if t == cls.TYPE]
            for v in versions:  # every version's topic is read
                assert f"{c.service}.receive.{channel_id(cls.TYPE, v)}" in ops
        for cls in c.publishes:
            assert f"{c.service}.send.{channel_id(cls.TYPE, cls.VERSION)}" in ops
        dead = f"{c.service}.send.{channel_id(DeadLettered.TYPE, 1)}"
        assert (dead in ops) == bool(c.subscribes)


def _routed_events(service: str) -> set[str]:
    """The event classes keyed in the ``routes={...}`` table of a service's bootstrap, read from its source."""
    tree = ast.parse((ROOT / "services" / service / "bootstrap.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "routes" and isinstance(node.value, ast.Dict):
            return {k.id for k in node.value.keys if isinstance(k, ast.Name)}
    return set()


@pytest.mark.parametrize("service", SERVICES)
def test_the_contract_is_the_handler_table_of_the_bootstrap(service: str) -> None:
    assert _routed_events(service) == {c.__name__ for c in contract(service).subscribes}


def test_a_service_whose_handler_table_differs_from_its_contract_does_not_start() -> None:
    async def handler(_event: MessageReceived) -> list:
        return []

    check_contract("memory", ServiceParts(routes=dict.fromkeys(contract("memory").subscribes, handler)))
    with pytest.raises(RuntimeError, match="MessageReceived"):
        check_contract("egress", ServiceParts(routes={MessageReceived: handler,
                                                      **dict.fromkeys(contract("egress").subscribes, handler)}))


def test_the_committed_document_is_the_generated_one() -> None:
    committed = json.loads((SCHEMAS / "asyncapi.json").read_text())
    assert committed == json.loads(json.dumps(document()))
