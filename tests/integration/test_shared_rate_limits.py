"""Egress's shared rate limiter against the real PostgreSQL: two limiters on two pools (as two replicas
would hold them), acquiring at once for one target, never grant more than the limit in any window."""

from __future__ import annotations

import asyncio
import time

import pytest

from agentbus.db import open_pool
from agentbus.services.egress.shared_limits import PgRateLimiter
from agentbus.settings import Settings
from tests.support.db import service_pool
from tests.support.platform import Infra

pytestmark = pytest.mark.integration

WINDOW_S, MARGIN_S, LIMIT = 1.0, 0.2, 4


async def test_two_limiters_share_one_limit_per_target(infra: Infra) -> None:
    async with service_pool(infra.database_url, "egress", max_size=6) as pool_a:
        async with pool_a.connection() as conn:
            schema = (await (await conn.execute("SELECT current_schema()")).fetchone() or [""])[0]
        pool_b = await open_pool(Settings(database_url=infra.database_url), schema, max_size=6)
        try:
            replicas = [PgRateLimiter(pool_a, WINDOW_S, MARGIN_S), PgRateLimiter(pool_b, WINDOW_S, MARGIN_S)]
            granted: list[float] = []
            waits: list[float] = []

            async def one(limiter: PgRateLimiter) -> None:
                wait = await limiter.reserve("robot:shared", LIMIT)
                waits.append(wait)
                await asyncio.sleep(wait)
                granted.append(time.monotonic())

            await asyncio.gather(*(one(replicas[i % 2]) for i in range(4 * LIMIT)))
            granted.sort()
            assert len(granted) == 4 * LIMIT
            # the sliding window: the grant LIMIT places later is at least a window after this one
            assert all(granted[i + LIMIT] - granted[i] >= WINDOW_S for i in range(len(granted) - LIMIT)), granted
            # a burst up to the limit goes at once; every further grant waits for its place
            assert sum(1 for w in waits if w == 0) == LIMIT
            assert sorted(waits)[LIMIT] > WINDOW_S
            async with pool_b.connection() as conn:
                row = await (await conn.execute(
                    "SELECT cardinality(grants) FROM rate_grants WHERE target = 'robot:shared'")).fetchone()
            assert row == (LIMIT,)  # only the newest LIMIT grants are kept
            # another target has an allowance of its own; no limit means no wait and no row
            assert [await replicas[1].reserve("robot:other", LIMIT) for _ in range(LIMIT)] == [0.0] * LIMIT
            await replicas[0].acquire("unlimited", None)
            async with pool_a.connection() as conn:
                rows = await (await conn.execute("SELECT target FROM rate_grants ORDER BY target")).fetchall()
            assert rows == [("robot:other",), ("robot:shared",)]
        finally:
            await pool_b.close()


async def test_a_lowered_limit_applies_to_the_grants_already_made(infra: Infra) -> None:
    async with service_pool(infra.database_url, "egress", max_size=2) as pool:
        limiter = PgRateLimiter(pool, WINDOW_S, MARGIN_S)
        assert [await limiter.reserve("chat", 6) for _ in range(3)] == [0.0] * 3
        # the limit drops to 2 (a configuration change): the third grant already used up the window
        assert await limiter.reserve("chat", 2) > WINDOW_S - 0.5
