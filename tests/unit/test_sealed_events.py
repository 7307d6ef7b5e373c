"""A person's text in events on the wire: sealed with its owner's key wherever the newest versions hold it,
opened before validation, ``[forgotten]`` once the key is deleted, ``[sealed]`` for a reader without keys;
plain where nobody owns it; older plain versions still read."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator

from agentbus.events import (
    Chat,
    ContextAssembled,
    ContextAssembledData,
    InferenceCompleted,
    InferenceCompletedDataV3,
    MemoryCommand,
    MemoryRequested,
    MessageReceived,
    MessageReceivedData,
    MessageReceivedDataV1,
    MessageReceivedV1,
    Recall,
    ReplyGenerated,
    ReplyGeneratedData,
    ReplyProgress,
    ReplyProgressData,
    Sender,
    ToolCalled,
    ToolCalledData,
    Turn,
    parse_event,
    utcnow,
)
from agentbus.sealing import FORGOTTEN, Keyring, SealError
from agentbus.sealing.wire import PLACES, SEALED, open_event, seal_event
from tests.unit.fakes_keys import MemoryKeyStore

SCHEMAS = Path(__file__).parents[2] / "schemas"
SECRET = "my locker code is 4417 zebra-quartz"
CHAT = Chat(id="team", type="group")


def message(user: str = "alice", text: str = SECRET) -> MessageReceived:
    return MessageReceived.new(
        MessageReceivedData(channel="acme-hook", channel_type="webhook", agent="assistant", platform_message_id="m1",
                            sender=Sender(id=user, name="Alice"), chat=CHAT, text=text, received_at=utcnow()),
        source="ingress", tenant="acme", conversation="acme/acme-hook/team")


def reply(asker: Sender | None, text: str = f"you said: {SECRET}") -> ReplyGenerated:
    return message().follow(ReplyGenerated, ReplyGeneratedData(
        agent="assistant", channel="acme-hook", channel_type="webhook", chat=CHAT, text=text, model="echo",
        asker=asker), source="reasoner", step="reply")


def no_plaintext(raw: bytes) -> None:
    for fragment in (b"4417", b"zebra", b"locker", b"bob's bike"):
        assert fragment not in raw, fragment


async def test_a_message_is_sealed_with_its_senders_key_and_opens_back() -> None:
    ring = Keyring(MemoryKeyStore())
    event = message()
    raw = await seal_event(ring, event)
    no_plaintext(raw)
    doc = orjson.loads(raw)
    assert doc["version"] == 2 and doc["data"]["text"]["alg"] == "A256GCM"
    assert (doc["data"]["sender"]["id"], doc["tenant"], doc["conversation"]) == (
        "alice", "acme", "acme/acme-hook/team")  # what routing and erasure need stays plain
    Draft202012Validator(json.loads((SCHEMAS / "message.received.v2.json").read_text())).validate(doc)
    assert await open_event(ring, raw) == event
    assert await seal_event(ring, event) == raw  # the same event sealed again: the same bytes
    assert (await open_event(None, raw)).data.text == SEALED  # no keys: it shows, sealed
    with pytest.raises(ValueError):
        parse_event(raw)  # validating a sealed record without opening it is refused, not misread


async def test_a_context_seals_each_turn_and_memory_with_its_owners_key() -> None:
    store = MemoryKeyStore()
    ring = Keyring(store, ttl_s=0)
    at = utcnow() - timedelta(minutes=1)
    ctx = ContextAssembled.new(ContextAssembledData(
        agent="assistant", channel="acme-hook", channel_type="webhook", chat=CHAT, trigger="message",
        input=Turn(role="user", text="and what about bob's bike?", at=utcnow(), owner="carol"),
        history=(Turn(role="user", text=SECRET, at=at, owner="alice"),
                 Turn(role="assistant", text=f"noted: {SECRET}", at=at, owner="alice"),
                 Turn(role="user", text="the job's prompt", at=at, sender="job:daily")),
        memories=(Recall(text="bob's bike is blue", score=0.9, owner="bob"),),
        asker=Sender(id="carol")), source="memory", tenant="acme", conversation="acme/acme-hook/team")
    raw = await seal_event(ring, ctx)
    no_plaintext(raw)
    assert b"the job's prompt" in raw  # nobody's: plain
    Draft202012Validator(json.loads((SCHEMAS / "context.assembled.v2.json").read_text())).validate(orjson.loads(raw))
    assert await open_event(ring, raw) == ctx
    await ring.forget("acme", "alice")
    opened = await open_event(ring, raw)
    assert isinstance(opened, ContextAssembled)
    assert [t.text for t in opened.data.history] == [FORGOTTEN, FORGOTTEN, "the job's prompt"]
    assert opened.data.input.text == "and what about bob's bike?"
    assert opened.data.memories[0].text == "bob's bike is blue"


async def test_answers_are_sealed_for_the_person_asked_and_a_jobs_stay_plain() -> None:
    ring = Keyring(MemoryKeyStore())
    alice = Sender(id="alice")
    mine, jobs = reply(alice), reply(None, text="the daily report")
    sealed = await seal_event(ring, mine)
    no_plaintext(sealed)
    assert orjson.loads(await seal_event(ring, jobs))["data"]["text"] == "the daily report"
    assert await open_event(ring, sealed) == mine
    progress = mine.follow(ReplyProgress, ReplyProgressData(
        agent="assistant", channel="acme-hook", channel_type="webhook", chat=CHAT, stage="partial", seq=1,
        text=f"you said: {SECRET}"[:12] + " 4417", asker=alice), source="reasoner", step="progress-1")
    inference = mine.follow(InferenceCompleted, InferenceCompletedDataV3(
        agent="assistant", model="echo", provider="agentbus", output_text=mine.data.text, owner="alice"),
        source="reasoner", step="inference")
    tool = mine.follow(ToolCalled, ToolCalledData(
        agent="assistant", step=1, call_id="c1", tool="memory", arguments={"action": "remember", "text": SECRET},
        side_effects=True, idempotency_key="k", outcome="ok", result=f"I will remember: {SECRET}", owner="alice"),
        source="reasoner", step="tool")
    fact = mine.follow(MemoryRequested, MemoryCommand(action="remember", text=SECRET, subject="alice"),
                       source="reasoner", step="memory")
    for event in (progress, inference, tool, fact):
        raw = await seal_event(ring, event)
        no_plaintext(raw)
        assert await open_event(ring, raw) == event, event.TYPE
    await ring.forget("acme", "alice")
    forgotten = await open_event(ring, await seal_event(Keyring(MemoryKeyStore()), tool))  # a key never here
    assert isinstance(forgotten, ToolCalled)
    assert (forgotten.data.arguments, forgotten.data.result) == (FORGOTTEN, FORGOTTEN)


async def test_older_plain_versions_and_plain_text_in_new_ones_still_read() -> None:
    ring = Keyring(MemoryKeyStore())
    old = MessageReceivedV1.new(MessageReceivedDataV1(
        channel="acme-hook", channel_type="webhook", agent="assistant", platform_message_id="m0",
        sender=Sender(id="alice"), chat=CHAT, text=SECRET, received_at=utcnow()),
        source="ingress", tenant="acme", conversation="acme/acme-hook/team")
    read = await open_event(ring, old.to_bytes())
    assert isinstance(read, MessageReceived) and read.version == 2 and read.data.text == SECRET
    plain = message()  # published by a producer without keys (a command line): plain text is valid in v2
    assert await open_event(ring, plain.to_bytes()) == plain == parse_event(plain.to_bytes())
    assert set(PLACES) == {("message.received", 2), ("context.assembled", 2), ("reply.generated", 3),
                           ("reply.progress", 2), ("inference.completed", 3), ("tool.called", 2),
                           ("memory.requested", 2)}


async def test_a_sealed_value_altered_or_moved_is_refused() -> None:
    ring = Keyring(MemoryKeyStore())
    doc = orjson.loads(await seal_event(ring, message()))
    other = orjson.loads(await seal_event(ring, message(user="bob", text="another")))
    doc["data"]["text"]["kid"] = other["data"]["text"]["kid"]  # bob's key named on alice's text
    with pytest.raises(SealError):
        await open_event(ring, orjson.dumps(doc))
