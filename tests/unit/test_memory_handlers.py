from __future__ import annotations

from agentbus.config import parse_config
from agentbus.events import Replay
from agentbus.events import Chat, MessageReceived, MessageReceivedData, ReplyGenerated, ReplyGeneratedData, Sender, utcnow
from agentbus.services.memory.handlers import Memory
from tests.support.platform import base_config
from tests.unit.fakes import FakeEmbedder, FakeTurnStore, FakeVectors


def memory() -> tuple[Memory, FakeTurnStore, FakeVectors]:
    store, vectors = FakeTurnStore(), FakeVectors()
    return Memory(parse_config(base_config()), store, FakeEmbedder(), vectors), store, vectors  # type: ignore[arg-type]


def message(tenant: str, chat: str, text: str, refusal: str | None = None) -> MessageReceived:
    return MessageReceived.new(
        MessageReceivedData(channel=tenant, channel_type="webhook", agent="assistant", platform_message_id=text,
                            sender=Sender(id="u1"), chat=Chat(id=chat), text=text, received_at=utcnow(),
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
    assert all("globex" not in r.text for r in ctx.data.memories)
    assert any("blue" in r.text for r in ctx.data.memories)
    assert ctx.causation_id is not None and ctx.correlation_id == ctx.causation_id


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


async def test_assistant_replies_are_remembered_but_replayed_ones_are_not() -> None:
    m, store, vectors = memory()
    cause = message("acme", "c1", "hi")
    data = ReplyGeneratedData(agent="assistant", channel="acme", channel_type="webhook", chat=Chat(id="c1"),
                              text="hello there", model="echo")
    live = cause.follow(ReplyGenerated, data, source="reasoner", step="reply")
    await m.remember_reply(live)
    replayed = live.model_copy(update={"replay": Replay(run="run-1")})
    await m.remember_reply(replayed)
    assert [t.text for _, t in store.turns["acme/acme/c1"]] == ["hello there"]
