"""Memory's turn store against the real PostgreSQL, with events handled together in one batch: each
conversation gets its own history, a redelivered event its first outputs, and one bad event fails alone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from psycopg_pool import AsyncConnectionPool

from agentbus.config import parse_config
from agentbus.db import processed_outputs
from agentbus.events import Chat, MessageReceived, MessageReceivedData, Replay, Sender, utcnow
from agentbus.services.memory import handlers
from agentbus.services.memory.handlers import Memory
from agentbus.services.memory.store import PgTurnStore
from tests.support.db import service_pool
from tests.support.platform import Infra, base_config

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(infra: Infra) -> AsyncIterator[AsyncConnectionPool]:
    async with service_pool(infra.database_url, "memory") as p:
        yield p


class CountingStore(PgTurnStore):
    """The real store, recording the size of every batch it read and wrote (a call made alone is a batch of one)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        super().__init__(pool)
        self.read: list[int] = []
        self.batched: list[int] = []

    async def _histories_many(self, items):
        self.read.append(len(items))
        return await super()._histories_many(items)

    async def _remember_many(self, items):
        self.batched.append(len(items))
        return await super()._remember_many(items)


def message(chat: str, text: str) -> MessageReceived:
    return MessageReceived.new(
        MessageReceivedData(channel="acme", channel_type="webhook", agent="assistant",
                            platform_message_id=uuid.uuid4().hex, sender=Sender(id="u1"), chat=Chat(id=chat),
                            text=text, received_at=utcnow()),
        source="ingress", tenant="acme", conversation=f"acme/acme/{chat}",
    )


async def test_events_handled_together_each_see_their_own_history(pool: AsyncConnectionPool) -> None:
    store = CountingStore(pool)
    memory = Memory(parse_config(base_config()), store, None, None)
    chats = [f"c{i}" for i in range(6)]
    await asyncio.gather(*(memory.assemble_context(message(c, f"first in {c}")) for c in chats))
    seconds = await asyncio.gather(*(memory.assemble_context(message(c, f"second in {c}")) for c in chats))
    assert store.batched and max(store.batched) == len(chats)  # the batched path was the one taken
    assert store.read and max(store.read) == len(chats)  # for the reads of the history too
    for chat, [ctx] in zip(chats, seconds, strict=True):
        assert [t.text for t in ctx.data.history] == [f"first in {chat}"]
        assert ctx.data.input.text == f"second in {chat}"
    thirds = await asyncio.gather(*(memory.assemble_context(message(c, f"third in {c}")) for c in chats))
    for chat, [ctx] in zip(chats, thirds, strict=True):  # oldest first
        assert [t.text for t in ctx.data.history] == [f"first in {chat}", f"second in {chat}"]


async def test_a_redelivered_event_in_a_batch_gets_its_first_outputs(pool: AsyncConnectionPool) -> None:
    store = CountingStore(pool)
    memory = Memory(parse_config(base_config()), store, None, None)
    e = message("c1", "hello")
    [first] = await memory.assemble_context(e)
    again, other = await asyncio.gather(memory.assemble_context(e), memory.assemble_context(message("c2", "hi")))
    assert store.batched == [1, 2]
    assert again == [first]  # same id, same content: the recorded outputs, not a second computation
    assert other[0].data.input.text == "hi"
    assert [t.text for t in await store.history("acme/acme/c1")] == ["hello"]


async def test_one_bad_event_fails_alone(pool: AsyncConnectionPool) -> None:
    store = CountingStore(pool)
    memory = Memory(parse_config(base_config()), store, None, None)
    good = [message(f"c{i}", f"fine {i}") for i in range(3)]
    bad = message("c9", "a NUL \x00 PostgreSQL text cannot hold")
    results = await asyncio.gather(*(memory.assemble_context(e) for e in [*good, bad]), return_exceptions=True)
    assert store.read == [4]  # reading the history carries no text: one batch for all
    assert store.batched == [4, 1, 1, 1, 1]  # the write failed, then each event went alone
    assert all(isinstance(r, list) and r[0].data.input.text == f"fine {i}" for i, r in enumerate(results[:3]))
    assert isinstance(results[3], Exception)
    for i in range(3):
        assert [t.text for t in await store.history(f"acme/acme/c{i}")] == [f"fine {i}"]
    assert await store.history("acme/acme/c9") == []
    async with pool.connection() as conn:  # not recorded as processed: the consumer retries it
        assert await processed_outputs(conn, bad) is None


async def test_a_failing_build_fails_only_its_event(pool: AsyncConnectionPool,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    store = CountingStore(pool)
    memory = Memory(parse_config(base_config()), store, None, None)
    e1, e2 = message("c1", "one"), message("c2", "two")
    build = handlers.context_of

    def context_of(event, *args):
        if event.id == e2.id:
            raise ValueError("cannot build")
        return build(event, *args)

    monkeypatch.setattr(handlers, "context_of", context_of)
    ok, failed = await asyncio.gather(memory.assemble_context(e1), memory.assemble_context(e2),
                                      return_exceptions=True)
    assert isinstance(ok, list) and ok[0].data.input.text == "one" and isinstance(failed, ValueError)
    assert store.read == [2] and store.batched == [1]  # read together; the failed one was never written
    assert [t.text for t in await store.history("acme/acme/c1")] == ["one"]
    assert await store.history("acme/acme/c2") == []  # its turn is written with its record, or not at all
    async with pool.connection() as conn:
        assert await processed_outputs(conn, e2) is None


async def test_a_replay_sees_the_history_as_it_was_and_stores_nothing(pool: AsyncConnectionPool) -> None:
    store = CountingStore(pool)
    memory = Memory(parse_config(base_config()), store, None, None)
    first, second = message("c1", "one"), message("c1", "two")
    await memory.assemble_context(first)
    await memory.assemble_context(second)
    await memory.assemble_context(message("c1", "three"))
    shadow = second.model_copy(update={"replay": Replay(run="run-1")})
    [ctx], [other] = await asyncio.gather(memory.assemble_context(shadow),
                                          memory.assemble_context(message("c2", "x")))
    assert store.read == [1, 1, 1, 2] and store.batched == [1, 1, 1, 2]
    assert [t.text for t in ctx.data.history] == ["one"]
    assert ctx.replay is not None and other.data.history == ()
    assert [t.text for t in await store.history("acme/acme/c1")] == ["one", "two", "three"]
