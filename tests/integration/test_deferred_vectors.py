"""Turns waiting for their vector, in the real PostgreSQL: claimed by one replica at a time, handed back while
the embeddings server is away, and gone once indexed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from psycopg_pool import AsyncConnectionPool

from agentbus.services.memory.deferredstore import PgDeferredIndex
from agentbus.services.memory.ports import Deferred, Origin
from tests.support.db import service_pool
from tests.support.platform import Infra

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(infra: Infra) -> AsyncIterator[AsyncConnectionPool]:
    async with service_pool(infra.database_url, "memory") as p:
        yield p


def turn(text: str) -> Deferred:
    return Deferred(uuid.uuid4(), "acme", "acme/acme/c1", "user", text, datetime.now(UTC),
                    Origin(owner="alice", sender="alice", sender_name="Alice", channel="acme", chat="c1",
                           chat_type="direct"))


async def test_claimed_once_released_while_away_and_done_once_indexed(pool: AsyncConnectionPool) -> None:
    a, b = PgDeferredIndex(pool), PgDeferredIndex(pool)
    items = [turn(f"t{i}") for i in range(5)]
    for item in items:
        await a.defer(item)
    await a.defer(items[0])  # a redelivered turn is kept once
    first, second = await asyncio.gather(a.take(3), b.take(10))
    assert len(first) + len(second) == 5
    assert {d.point_id for d in first}.isdisjoint({d.point_id for d in second})  # never both replicas
    assert await a.take(10) == []  # all claimed
    await a.release([d.point_id for d in first])
    again = await b.take(10)
    assert {d.point_id for d in again} == {d.point_id for d in first}
    assert {d.origin for d in again} == {items[0].origin}
    await b.done([d.point_id for d in again + second])
    await b.release([d.point_id for d in again])  # released after done: nothing comes back
    assert await a.take(10) == []
