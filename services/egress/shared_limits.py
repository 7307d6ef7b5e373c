"""Rate limits kept in PostgreSQL, so every egress replica draws on the same allowance per target.

A platform counts pushes per robot or chat however many processes send them; a bucket per process lets
two replicas send twice the limit, and a replica that takes over a partition starts with a full bucket.
Here each target's row keeps the times of its newest grants (at most ``per_minute`` of them), and one
``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` reserves the next slot: the earliest time at which the
grant would leave no window of ``window_s`` (plus ``margin_s``) with more than ``per_minute`` grants. The
statement hands back the wait, and the caller sleeps it away holding no lock, so replicas never take
turns on a lock. This is the sliding window the platforms enforce (DingTalk throttles a custom robot for
ten minutes past 20 a minute), so a burst of up to the limit goes out at once, and never more in a minute.
Times come from the database's clock, the one clock all replicas share. ``margin_s`` covers the time
between the grant and the push reaching the platform.
"""

from __future__ import annotations

import asyncio

from psycopg_pool import AsyncConnectionPool

RESERVE = """
INSERT INTO rate_grants AS r (target, grants)
VALUES (%(target)s, ARRAY[extract(epoch FROM clock_timestamp())::float8])
ON CONFLICT (target) DO UPDATE SET grants = (
    SELECT (r.grants || s.slot)[greatest(1, cardinality(r.grants) + 2 - %(limit)s):]
    FROM (SELECT greatest(
        extract(epoch FROM clock_timestamp())::float8,
        r.grants[cardinality(r.grants)],
        CASE WHEN cardinality(r.grants) >= %(limit)s
             THEN r.grants[cardinality(r.grants) - %(limit)s + 1] + %(span)s END
    ) AS slot) AS s
)
RETURNING grants[cardinality(grants)] - extract(epoch FROM clock_timestamp())::float8
"""


class PgRateLimiter:
    """``per_minute`` pushes per target in any ``window_s``, shared through the ``rate_grants`` table."""

    def __init__(self, pool: AsyncConnectionPool, window_s: float = 60.0, margin_s: float = 1.0) -> None:
        self._pool = pool
        self._span = window_s + margin_s

    async def reserve(self, target: str, per_minute: int) -> float:
        """Reserve the next slot for ``target``; the seconds until it (0 when it is now)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(RESERVE, {"target": target, "limit": per_minute, "span": self._span},
                                     prepare=True)
            row = await cur.fetchone()
        assert row is not None  # an upsert always returns its row
        return max(float(row[0]), 0.0)

    async def acquire(self, target: str, per_minute: int | None) -> None:
        if not per_minute:
            return
        wait = await self.reserve(target, per_minute)
        if wait > 0:
            await asyncio.sleep(wait)
