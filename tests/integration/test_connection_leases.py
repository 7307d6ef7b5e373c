"""Leases of long connections against the real PostgreSQL: one holder at a time, even when replicas race."""

from __future__ import annotations

import asyncio

import pytest

from agentbus.services.ingress.longconn.lease import PgLeases
from tests.support.db import service_pool
from tests.support.platform import Infra

pytestmark = pytest.mark.integration


async def test_one_holder_renewal_expiry_and_release(infra: Infra) -> None:
    async with service_pool(infra.database_url, "ingress", max_size=4) as pool:
        leases = PgLeases(pool)
        assert await leases.acquire("tg", "a", 0.6) == "a"
        assert await leases.acquire("tg", "b", 0.6) == "a"  # held: b is told who holds it
        assert await leases.acquire("tg", "a", 0.6) == "a"  # renewal
        assert await leases.acquire("slack", "b", 30) == "b"  # leases are per channel
        await asyncio.sleep(0.8)  # a stops renewing (a SIGKILL): the database's clock expires the lease
        assert await leases.acquire("tg", "b", 30) == "b"
        assert await leases.acquire("tg", "a", 30) == "b"
        await leases.release("tg", "a")  # not the holder: changes nothing
        assert await leases.acquire("tg", "a", 30) == "b"
        await leases.release("tg", "b")
        assert await leases.acquire("tg", "a", 30) == "a"
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT epoch FROM connection_leases WHERE channel = 'tg'")
            row = await cur.fetchone()
        assert row is not None and row[0] == 3  # a, b, a again


async def test_replicas_racing_for_a_free_lease_agree_on_one_holder(infra: Infra) -> None:
    async with service_pool(infra.database_url, "ingress", max_size=8) as pool:
        replicas = [PgLeases(pool) for _ in range(8)]
        answers = await asyncio.gather(*(r.acquire("dt", f"r{i}", 30) for i, r in enumerate(replicas)))
        holders = set(answers)
        assert len(holders) == 1
        [winner] = holders
        assert sum(1 for i, a in enumerate(answers) if a == f"r{i}") == 1 and winner.startswith("r")
