"""Leases of long connections in PostgreSQL (ingress's ``connection_leases`` table).

One statement takes, renews or refuses a lease: the row is written when it is free, expired, or already
ours, and the holder after the statement is returned either way. Expiry is judged by the database's clock
alone, so replicas with skewed clocks still agree on who holds a channel.
"""

from __future__ import annotations

import psycopg
import psycopg_pool
from psycopg_pool import AsyncConnectionPool

from agentbus.services.ingress.ports import LeaseUnavailable

_ACQUIRE = """
INSERT INTO connection_leases AS l (channel, holder, expires_at)
VALUES (%(channel)s, %(holder)s, now() + make_interval(secs => %(ttl)s))
ON CONFLICT (channel) DO UPDATE
   SET holder = excluded.holder,
       expires_at = excluded.expires_at,
       epoch = CASE WHEN l.holder = excluded.holder THEN l.epoch ELSE l.epoch + 1 END,
       acquired_at = CASE WHEN l.holder = excluded.holder THEN l.acquired_at ELSE now() END
 WHERE l.holder = excluded.holder OR l.expires_at < now()
RETURNING holder
"""


class PgLeases:
    def __init__(self, pool: AsyncConnectionPool, db_timeout_s: float = 2.0) -> None:
        self._pool = pool
        self._db_timeout_s = db_timeout_s

    async def acquire(self, channel: str, holder: str, ttl_s: float) -> str:
        try:
            async with self._pool.connection(timeout=self._db_timeout_s) as conn:
                cur = await conn.execute(_ACQUIRE, {"channel": channel, "holder": holder, "ttl": ttl_s})
                row = await cur.fetchone()
                if row is not None:
                    return str(row[0])
                cur = await conn.execute("SELECT holder FROM connection_leases WHERE channel = %s", (channel,))
                row = await cur.fetchone()
                return str(row[0]) if row else ""
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise LeaseUnavailable(str(exc)) from exc

    async def release(self, channel: str, holder: str) -> None:
        try:
            async with self._pool.connection(timeout=self._db_timeout_s) as conn:
                await conn.execute(
                    "UPDATE connection_leases SET expires_at = now() - interval '1 second' "
                    "WHERE channel = %s AND holder = %s",
                    (channel, holder),
                )
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise LeaseUnavailable(str(exc)) from exc
