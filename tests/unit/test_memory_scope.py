"""Whose memories a turn recalls (the agent's recall scope), who said them, that recall never repeats the
history, and that a turn is answered at once, from history only, while the embeddings server is away."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import REGISTRY

from agentbus.bus.errors import PermanentError
from agentbus.config import parse_config
from agentbus.events import (
    Chat,
    ContextAssembled,
    MessageReceived,
    MessageReceivedData,
    ReplyGenerated,
    ReplyGeneratedData,
    Sender,
    utcnow,
)
from agentbus.ids import Step
from agentbus.services.memory.handlers import Memory
from agentbus.services.memory.outage import index_deferred
from agentbus.services.memory.ports import Origin, Scope
from agentbus.services.memory.recallgate import EmbeddingsGate
from tests.support.platform import base_config
from tests.unit.fakes_memory import FakeDeferredIndex, FakeEmbedder, FakeTurnStore, FakeVectors

T0 = (utcnow() - timedelta(hours=2)).replace(microsecond=0)  # inside the history's time to live


def config(scope: str | None = None, **settings: Any) -> dict[str, Any]:
    doc = base_config()
    for agent in doc["agents"]:
        mem = agent.setdefault("memory", {})
        mem.update(settings)
        if scope is not None:
            mem["recall_scope"] = scope
    return doc


def memory(scope: str | None = None, embedder: Any = None,
           **settings: Any) -> tuple[Memory, FakeVectors, FakeDeferredIndex]:
    vectors, deferred = FakeVectors(), FakeDeferredIndex()
    m = Memory(parse_config(config(scope, **settings)), FakeTurnStore(), embedder or FakeEmbedder(), vectors,
               deferred, EmbeddingsGate(pause_s=3600))
    return m, vectors, deferred


def say(sender: str, chat: str, text: str, group: bool = False, at: datetime | None = None) -> MessageReceived:
    return MessageReceived.new(
        MessageReceivedData(channel="acme", channel_type="webhook", agent="assistant", platform_message_id=text,
                            sender=Sender(id=sender, name=sender.title()),
                            chat=Chat(id=chat, type="group" if group else "direct", name="team" if group else None),
                            text=text, received_at=at or utcnow()),
        source="ingress", tenant="acme", conversation=f"acme/acme/{chat}",
    )


async def recalled(m: Memory, event: MessageReceived) -> list[str]:
    [ctx] = await m.assemble_context(event)
    assert isinstance(ctx, ContextAssembled)
    return [r.text for r in ctx.data.memories]


async def test_user_scope_recalls_the_askers_own_memories_in_their_other_chats_only() -> None:
    m, vectors, _ = memory()  # the default scope
    await m.assemble_context(say("alice", "alice-dm", "my locker code is 4417"))
    assert await recalled(m, say("alice", "alice-dm-2", "what is my locker code?")) == ["my locker code is 4417"]
    assert await recalled(m, say("bob", "bob-dm", "what is my locker code?")) == []
    assert vectors.searches[-1][0] == Scope("acme", owner="bob")  # the filter is the store's, not a post-filter


async def test_user_scope_in_a_group_leaves_out_what_was_said_in_direct_chats() -> None:
    m, _, _ = memory()
    await m.assemble_context(say("alice", "alice-dm", "my locker code is 4417"))
    await m.assemble_context(say("alice", "team", "the offsite is in May", group=True))
    assert await recalled(m, say("alice", "team-2", "locker? offsite?", group=True)) == ["the offsite is in May"]


async def test_conversation_scope_recalls_this_conversation_only() -> None:
    m, _, _ = memory("conversation")
    await m.assemble_context(say("alice", "c1", "the door code is blue", at=T0))
    assert await recalled(m, say("alice", "c2", "what is the door code?")) == []
    m2, _, _ = memory("conversation", history_turns=0)  # no history: recall is all there is
    await m2.assemble_context(say("alice", "c1", "the door code is blue", at=T0))
    assert await recalled(m2, say("bob", "c1", "what is the door code?", at=T0 + timedelta(seconds=1))) == [
        "the door code is blue"]


async def test_tenant_scope_shares_what_anyone_said() -> None:
    m, _, _ = memory("tenant")
    await m.assemble_context(say("alice", "alice-dm", "the wifi password is hunter2"))
    assert await recalled(m, say("bob", "bob-dm", "wifi password?")) == ["the wifi password is hunter2"]


async def test_vectors_stored_without_a_sender_are_recalled_in_tenant_scope_only() -> None:
    for scope, found in (("user", []), ("tenant", ["an old turn"])):
        m, vectors, _ = memory(scope)
        await vectors.upsert(say("x", "old", "an old turn").id, [1.0, 1.0], Scope("acme"), "acme/acme/old", "user",
                             "an old turn", T0)  # as written before origins were kept
        assert await recalled(m, say("alice", "alice-dm", "anything old?")) == found


async def test_recalled_memories_say_who_said_them_where_and_when() -> None:
    m, _, _ = memory("tenant")
    await m.assemble_context(say("alice", "team", "my locker code is 4417", group=True, at=T0))
    [ctx] = await m.assemble_context(say("bob", "bob-dm", "whose locker code is 4417?"))
    [r] = ctx.data.memories
    assert (r.sender, r.sender_name, r.channel, r.chat, r.chat_name, r.chat_type) == (
        "alice", "Alice", "acme", "team", "team", "group")
    assert r.at == T0 and r.event_id is not None


async def test_recall_never_repeats_a_turn_of_the_history() -> None:
    m, vectors, _ = memory("tenant")
    first = say("alice", "c1", "the door code is blue", at=T0)
    await m.assemble_context(first)
    reply = first.follow(ReplyGenerated, ReplyGeneratedData(
        agent="assistant", channel="acme", channel_type="webhook", chat=Chat(id="c1"), text="noted, blue",
        model="echo", asker=Sender(id="alice")), source="reasoner", step=Step.REPLY)
    await m.remember_reply(reply)
    await m.assemble_context(say("alice", "c2", "the door code is blue, in the other chat", at=T0))
    asking = say("alice", "c1", "what is the door code?", at=utcnow() + timedelta(minutes=1))
    [ctx] = await m.assemble_context(asking)
    assert [t.text for t in ctx.data.history] == ["the door code is blue", "noted, blue"]
    assert [r.text for r in ctx.data.memories] == ["the door code is blue, in the other chat"]
    _, left_out = vectors.searches[-1]
    assert left_out == {asking.id, first.id, reply.id}


@dataclass
class DownEmbedder:
    """An embeddings server that is away (or refuses), until ``up``; counts the calls it was asked."""

    up: bool = False
    refuse: bool = False
    calls: int = 0
    inner: FakeEmbedder = field(default_factory=FakeEmbedder)

    async def embed(self, texts: Sequence[str], kind: str) -> list[list[float]]:
        self.calls += 1
        if self.refuse:
            raise PermanentError("embeddings endpoint answered 400: input too long")
        if not self.up:
            raise ConnectionRefusedError("connection refused")
        return await self.inner.embed(texts, kind)


def skipped(reason: str) -> float:
    return REGISTRY.get_sample_value("agentbus_recall_skipped_total", {"reason": reason}) or 0.0


async def test_embeddings_down_answers_from_history_at_once_and_indexes_the_turn_later() -> None:
    embedder = DownEmbedder()
    m, vectors, deferred = memory("tenant", embedder)
    before = skipped("embeddings_unavailable")
    first = say("alice", "c1", "my locker code is 4417", at=T0)
    [ctx] = await m.assemble_context(first)
    assert ctx.data.memories == ()
    [ctx2] = await m.assemble_context(say("alice", "c1", "and my desk is 12", at=T0 + timedelta(seconds=1)))
    assert [t.text for t in ctx2.data.history] == ["my locker code is 4417"]
    assert embedder.calls == 1  # the gate shut after the first failure: the next turn did not wait for it
    assert skipped("embeddings_unavailable") == before + 2
    assert vectors.points == {} and {d.text for d in deferred.waiting.values()} == {
        "my locker code is 4417", "and my desk is 12"}

    gate = m.gate
    assert await index_deferred(embedder, vectors, deferred, gate) == 0  # still away: handed back, kept
    assert len(deferred.waiting) == 2 and len(deferred.released) == 2
    embedder.up = True
    assert await index_deferred(embedder, vectors, deferred, gate) == 2
    assert gate.open and deferred.waiting == {}
    point = vectors.points[first.id]
    assert point.text == "my locker code is 4417" and point.origin == Origin(
        owner="alice", sender="alice", sender_name="Alice", channel="acme", chat="c1", chat_type="direct")
    assert await recalled(m, say("bob", "c9", "locker?")) == ["my locker code is 4417", "and my desk is 12"]


async def test_a_refused_text_is_answered_without_recall_and_its_vector_skipped_for_good() -> None:
    embedder = DownEmbedder(refuse=True)
    m, vectors, deferred = memory(None, embedder)
    before = skipped("embeddings_rejected")
    [ctx] = await m.assemble_context(say("alice", "c1", "x" * 100))
    assert ctx.data.memories == () and ctx.data.input.text == "x" * 100
    assert skipped("embeddings_rejected") == before + 1
    assert vectors.points == {} and deferred.waiting == {} and m.gate.open  # a refusal is not an outage
