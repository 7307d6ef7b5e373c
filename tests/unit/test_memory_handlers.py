from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import pytest

from agentbus.config import parse_config
from agentbus.events import (
    Attachment,
    Button,
    Card,
    Chat,
    JobTriggered,
    JobTriggeredData,
    MessageReceived,
    MessageReceivedData,
    Replay,
    ReplyGenerated,
    ReplyGeneratedData,
    Sender,
    Turn,
    utcnow,
)
from agentbus.ids import Step, derive_id
from agentbus.services.memory.handlers import Memory
from agentbus.services.memory.ports import Kind, Origin, Scope
from tests.support.platform import base_config
from tests.unit.fakes_memory import FakeEmbedder, FakeTurnStore, FakeVectors


def memory() -> tuple[Memory, FakeTurnStore, FakeVectors]:
    store, vectors = FakeTurnStore(), FakeVectors()
    return Memory(parse_config(base_config()), store, FakeEmbedder(), vectors), store, vectors


def message(tenant: str, chat: str, text: str, refusal: str | None = None,
            at: datetime | None = None) -> MessageReceived:
    return MessageReceived.new(
        MessageReceivedData(channel=tenant, channel_type="webhook", agent="assistant", platform_message_id=text,
                            sender=Sender(id="u1"), chat=Chat(id=chat), text=text, received_at=at or utcnow(),
                            refusal=refusal),
        source="ingress", tenant=tenant, conversation=f"{tenant}/{tenant}/{chat}",
    )


async def test_context_has_history_and_same_tenant_memories_only() -> None:
    m, store, vectors = memory()
    [first] = await m.assemble_context(message("acme", "c1", "the password hint is blue"))
    assert first.data.history == () and first.data.memories == ()
    await m.assemble_context(message("globex", "g1", "globex secret plans"))
    [ctx] = await m.assemble_context(message("acme", "c1", "what was the hint?"))
    assert [t.text for t in ctx.data.history] == ["the password hint is blue"]
    assert ctx.data.memories == ()  # the turn is in the history already: never recalled a second time
    [other] = await m.assemble_context(message("acme", "c2", "what was the hint again?"))
    assert other.data.history == ()
    assert all("globex" not in r.text for r in other.data.memories)
    assert any("blue" in r.text for r in other.data.memories)
    assert ctx.causation_id is not None and ctx.correlation_id == ctx.causation_id
    assert ctx.data.asker == Sender(id="u1")  # the reply can address whoever asked


async def test_redelivery_returns_the_same_outputs_and_stores_once() -> None:
    m, store, vectors = memory()
    e = message("acme", "c1", "hello")
    a = await m.assemble_context(e)
    b = await m.assemble_context(e)
    assert a == b
    assert len(store.turns["acme/acme/c1"]) == 1


async def test_refused_sender_is_not_remembered() -> None:
    m, store, vectors = memory()
    [ctx] = await m.assemble_context(message("acme", "c1", "let me in", refusal="Sorry"))
    assert ctx.data.refusal == "Sorry"
    assert store.turns.get("acme/acme/c1", []) == [] and vectors.points == {}


async def test_a_replayed_message_sees_the_history_before_it_and_stores_nothing() -> None:
    m, store, vectors = memory()
    t0 = utcnow()
    first, second, third = (message("acme", "c1", text, at=t0 + timedelta(seconds=i))
                            for i, text in enumerate(["one", "two", "three"]))
    for e in (first, second, third):
        await m.assemble_context(e)
    shadow = second.model_copy(update={"replay": Replay(run="run-1")})
    [ctx] = await m.assemble_context(shadow)
    assert [t.text for t in ctx.data.history] == ["one"] and ctx.replay == Replay(run="run-1")
    assert [t.text for _, t in store.turns["acme/acme/c1"]] == ["one", "two", "three"]
    assert sorted(p.text for p in vectors.points.values()) == ["one", "three", "two"]


async def test_a_job_firing_is_a_turn_of_the_job() -> None:
    m, store, _ = memory()
    due = utcnow()
    firing = JobTriggered.new(
        JobTriggeredData(job_id="daily", due_at=due, agent="assistant", channel="acme", chat=Chat(id="c1"),
                         prompt="summarise the day", reply_route={"to": "c1"}),
        source="scheduler", tenant="acme", conversation="acme/acme/c1",
    )
    [ctx] = await m.assemble_context(firing)
    assert ctx.id == derive_id(firing.id, Step.CONTEXT)
    assert ctx.data.trigger == "job" and ctx.data.in_reply_to is None and ctx.data.refusal is None
    assert ctx.data.asker is None  # a job's push addresses nobody
    assert ctx.data.input == Turn(role="user", text="summarise the day", at=due, event_id=firing.id,
                                  sender="job:daily")
    assert ctx.data.reply_route == {"to": "c1"} and ctx.data.chat == Chat(id="c1")
    assert [t.text for _, t in store.turns["acme/acme/c1"]] == ["summarise the day"]


async def test_assistant_replies_are_remembered_but_replayed_ones_are_not() -> None:
    m, store, vectors = memory()
    cause = message("acme", "c1", "hi")
    data = ReplyGeneratedData(agent="assistant", channel="acme", channel_type="webhook", chat=Chat(id="c1"),
                              text="hello there", model="echo")
    live = cause.follow(ReplyGenerated, data, source="reasoner", step=Step.REPLY)
    await m.remember_reply(live)
    replayed = live.model_copy(update={"replay": Replay(run="run-1")})
    await m.remember_reply(replayed)
    assert [t.text for _, t in store.turns["acme/acme/c1"]] == ["hello there"]


async def test_a_reply_turn_keeps_the_card_buttons_and_files_it_offered() -> None:
    m, store, _ = memory()
    cause = message("acme", "c1", "deploy?")
    data = ReplyGeneratedData(
        agent="assistant", channel="acme", channel_type="webhook", chat=Chat(id="c1"), text="Release 1.4 is ready.",
        model="echo", card=Card(title="Deploy", buttons=(Button(label="Yes", value="deploy 1.4"),
                                                          Button(label="Later", value="later"))),
        attachments=(Attachment(kind="file", url="https://example.com/notes.pdf", name="notes.pdf"),))
    await m.remember_reply(cause.follow(ReplyGenerated, data, source="reasoner", step=Step.REPLY))
    [(_, turn)] = store.turns["acme/acme/c1"]
    assert turn.text == ("Release 1.4 is ready.\n[card: Deploy with buttons Yes = deploy 1.4; Later = later]\n"
                         "[sent file notes.pdf]")


class FlakyVectors(FakeVectors):
    """Its first ``failures`` upserts fail after a pause, so the turn's record finishes first."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def upsert(self, point_id: uuid.UUID, vector: list[float], scope: Scope, conversation: str, role: str,
                     text: str, at: datetime, kind: Kind = "turn", subject: str | None = None,
                     origin: Origin | None = None) -> None:
        await asyncio.sleep(0.01)
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("vector store unavailable")
        await super().upsert(point_id, vector, scope, conversation, role, text, at, kind, subject, origin)


async def test_a_failed_vector_write_fails_the_event_and_its_retry_writes_it() -> None:
    store, vectors = FakeTurnStore(), FlakyVectors(failures=2)
    m = Memory(parse_config(base_config()), store, FakeEmbedder(), vectors)
    e = message("acme", "c1", "remember the blue door")
    with pytest.raises(ConnectionError):
        await m.assemble_context(e)
    # the turn and its record were written beside the failed vector write, and are not written twice
    assert [t.text for _, t in store.turns["acme/acme/c1"]] == ["remember the blue door"]
    assert vectors.points == {}
    vectors.failures = 0
    retried = await m.assemble_context(e)
    assert len(retried) == 1 and retried[0].data.input.text == "remember the blue door"
    assert len(store.turns["acme/acme/c1"]) == 1
    assert [p.text for p in vectors.points.values()] == ["remember the blue door"]

    reply = e.follow(ReplyGenerated, ReplyGeneratedData(agent="assistant", channel="acme", channel_type="webhook",
                                                        chat=Chat(id="c1"), text="noted", model="echo"),
                     source="reasoner", step=Step.REPLY)
    vectors.failures = 1
    with pytest.raises(ConnectionError):
        await m.remember_reply(reply)
    await m.remember_reply(reply)
    assert [t.text for _, t in store.turns["acme/acme/c1"]] == ["remember the blue door", "noted"]
    assert sorted(p.text for p in vectors.points.values()) == ["noted", "remember the blue door"]


async def test_history_keeps_to_its_time_to_live_and_earlier_turns_go_beside_it_for_the_summary() -> None:
    cfg = base_config()
    cfg["agents"][0]["memory"] = {"history_turns": 2, "history_ttl_days": 7, "summary_after": 2}
    store = FakeTurnStore()
    m = Memory(parse_config(cfg), store, FakeEmbedder(), FakeVectors())
    now = utcnow()
    await m.assemble_context(message("acme", "c1", "said eight days ago", at=now - timedelta(days=8)))
    for i in range(6):
        await m.assemble_context(message("acme", "c1", f"turn {i}", at=now - timedelta(minutes=10 - i)))
    [ctx] = await m.assemble_context(message("acme", "c1", "and now?", at=now))
    assert [t.text for t in ctx.data.history] == ["turn 4", "turn 5"]
    assert [t.text for t in ctx.data.earlier] == ["turn 0", "turn 1", "turn 2", "turn 3"]  # 2 x summary_after
    # past its time to live a turn leaves the short-term memory but stays a long-term one: recalled, attributed
    assert [r.text for r in ctx.data.memories] == ["said eight days ago"]
    plain = Memory(parse_config(base_config()), store, FakeEmbedder(), FakeVectors())  # no summary: no earlier
    [ctx] = await plain.assemble_context(message("acme", "c1", "once more", at=now))
    assert ctx.data.earlier == () and "said eight days ago" not in [t.text for t in ctx.data.history]
