"""The running summaries' store and the short-term history's time to live, against the real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from psycopg_pool import AsyncConnectionPool

from agentbus.events import Chat, MessageReceived, MessageReceivedData, Sender, Turn, utcnow
from agentbus.services.memory.store import PgTurnStore
from agentbus.services.reasoner.summaries import folded
from agentbus.services.reasoner.summarystore import PgSummaries
from tests.support.db import service_pool
from tests.support.platform import Infra

pytestmark = pytest.mark.integration


@pytest.fixture
async def reasoner_pool(infra: Infra) -> AsyncIterator[AsyncConnectionPool]:
    async with service_pool(infra.database_url, "reasoner") as p:
        yield p


@pytest.fixture
async def memory_pool(infra: Infra) -> AsyncIterator[AsyncConnectionPool]:
    async with service_pool(infra.database_url, "memory") as p:
        yield p


async def test_a_summary_only_moves_forward(reasoner_pool: AsyncConnectionPool) -> None:
    store = PgSummaries(reasoner_pool)
    t0 = utcnow()
    turns = [Turn(role="user", text=f"t{i}", at=t0 + timedelta(seconds=i), owner=f"u{i % 2}") for i in range(4)]
    first = folded(None, turns[:2], "up to t1")
    assert await store.save("acme", "acme/c/1", "assistant", first)
    second = folded(first, turns[2:], "up to t3")
    assert await store.save("acme", "acme/c/1", "assistant", second)
    assert not await store.save("acme", "acme/c/1", "assistant", first)  # a late, older fold changes nothing
    got = await store.get("acme/c/1")
    assert got is not None and (got.text, got.turns, got.covers_until, got.owners) == (
        "up to t3", 4, turns[3].at, ("u0", "u1"))
    assert await store.get("acme/c/2") is None


async def test_the_history_leaves_out_turns_older_than_its_time_to_live(memory_pool: AsyncConnectionPool) -> None:
    store = PgTurnStore(memory_pool)
    now = utcnow()
    for days, text in ((9, "nine days ago"), (3, "three days ago"), (0, "today")):
        at = now - timedelta(days=days)
        e = MessageReceived.new(MessageReceivedData(
            channel="acme", channel_type="webhook", agent="assistant", platform_message_id=str(uuid.uuid4()),
            sender=Sender(id="u1"), chat=Chat(id="c"), text=text, received_at=at),
            source="ingress", tenant="acme", conversation="acme/acme/c")
        await store.remember(e, Turn(role="user", text=text, at=at, owner="u1"), [])
    everything = await store.history("acme/acme/c", 10)
    week = await store.history("acme/acme/c", 10, since=now - timedelta(days=7))
    assert [t.text for t in everything] == ["nine days ago", "three days ago", "today"]
    assert [t.text for t in week] == ["three days ago", "today"]
    await store.aclose()
