from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from agentbus.events import (
    CATALOGUE,
    Chat,
    ContextAssembled,
    ContextAssembledData,
    MessageReceived,
    MessageReceivedData,
    Sender,
    Turn,
    UnknownEvent,
    derive_id,
    parse_event,
    utcnow,
)
from agentbus.schemas import diff_schemas, schema_of

SCHEMAS = Path(__file__).parents[2] / "schemas"


def message(text: str = "你好, world") -> MessageReceived:
    return MessageReceived.new(
        MessageReceivedData(channel="c", channel_type="webhook", agent="a", platform_message_id="m1",
                            sender=Sender(id="u"), chat=Chat(id="x"), text=text, received_at=utcnow()),
        source="ingress", tenant="t", conversation="t/c/x",
    )


def test_round_trip_is_exact_including_chinese() -> None:
    e = message()
    back = parse_event(e.to_bytes())
    assert back == e and type(back) is MessageReceived and back.data.text == "你好, world"


def test_follow_is_deterministic_and_keeps_the_chain() -> None:
    e = message()
    data = ContextAssembledData(agent="a", channel="c", channel_type="webhook", chat=Chat(id="x"),
                                trigger="message", input=Turn(role="user", text="hi", at=utcnow()))
    a = e.follow(ContextAssembled, data, source="memory", step="context")
    b = e.follow(ContextAssembled, data, source="memory", step="context")
    assert a.id == b.id == derive_id(e.id, "context")
    assert a.causation_id == e.id and a.correlation_id == e.correlation_id and a.conversation == e.conversation
    assert derive_id(e.id, "other") != a.id


def test_events_are_frozen_and_strict() -> None:
    e = message()
    with pytest.raises(ValidationError):
        e.tenant = "other"  # type: ignore[misc]
    raw = json.loads(e.to_bytes())
    raw["data"]["added_later"] = 1  # a field a newer producer added: a tolerant reader ignores it
    assert parse_event(json.dumps(raw)) == e
    raw["data"]["text"] = 5
    with pytest.raises(ValueError):
        parse_event(json.dumps(raw))
    raw = json.loads(e.to_bytes())
    raw["version"] = 99
    with pytest.raises(UnknownEvent):
        parse_event(json.dumps(raw))


def test_committed_schemas_match_the_models() -> None:
    assert diff_schemas(SCHEMAS) == [], "run `agentbus schemas` and commit the result"


@pytest.mark.parametrize("key", sorted(CATALOGUE))
def test_events_validate_against_their_json_schema(key: tuple[str, int]) -> None:
    schema = json.loads((SCHEMAS / f"{key[0]}.v{key[1]}.json").read_text())
    Draft202012Validator.check_schema(schema)
    assert schema == schema_of(*key)


def test_a_real_event_validates_against_the_committed_schema() -> None:
    schema = json.loads((SCHEMAS / "message.received.v2.json").read_text())
    Draft202012Validator(schema).validate(json.loads(message().to_bytes()))


def test_ids_are_uuids() -> None:
    assert isinstance(message().id, uuid.UUID)
