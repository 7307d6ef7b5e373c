"""Turns waiting for their vector, in memory's ``deferred_vectors`` table (see ``outage``).

A batch is claimed for ``claim_s`` by moving its ``claimed_until`` forward (rows locked with SKIP LOCKED
while that happens, so two replicas never take the same rows); ``done`` deletes it, ``release`` hands it
back. A replica that dies holding a
claim only delays those rows until it runs out, and indexing them twice is harmless (upserts are by id).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from psycopg_pool import AsyncConnectionPool

from agentbus.services.memory.ports import Deferred, Origin

_COLUMNS = "id, tenant, conversation, role, text, at, owner, sender, sender_name, channel, chat, chat_name, chat_type"


class PgDeferredIndex:
    """The ``DeferredIndex`` port over memory's ``deferred_vectors`` table."""

    def __init__(self, pool: AsyncConnectionPool, claim_s: float = 60.0) -> None:
        self._pool = pool
        self._claim_s = claim_s

    async def defer(self, item: Deferred) -> None:
        o = item.origin
        async with self._pool.connection() as conn:
            await conn.execute(
                f"INSERT INTO deferred_vectors ({_COLUMNS}) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (item.point_id, item.tenant, item.conversation, item.role, item.text, item.at, o.owner, o.sender,
                 o.sender_name, o.channel, o.chat, o.chat_name, o.chat_type))

    async def take(self, limit: int) -> list[Deferred]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "WITH c AS (SELECT id FROM deferred_vectors WHERE claimed_until < now() "
                "ORDER BY deferred_at LIMIT %s FOR UPDATE SKIP LOCKED) "
                "UPDATE deferred_vectors d SET claimed_until = now() + make_interval(secs => %s) FROM c "
                f"WHERE d.id = c.id RETURNING {', '.join('d.' + c for c in _COLUMNS.split(', '))}",
                (limit, self._claim_s))
            rows = await cur.fetchall()
        return [Deferred(point_id, tenant, conversation, role, text, at,
                         Origin(owner, sender, sender_name, channel, chat, chat_name, chat_type))
                for point_id, tenant, conversation, role, text, at, owner, sender, sender_name, channel, chat,
                chat_name, chat_type in rows]

    async def done(self, ids: Sequence[uuid.UUID]) -> None:
        async with self._pool.connection() as conn:
            await conn.execute("DELETE FROM deferred_vectors WHERE id = ANY(%s)", (list(ids),))

    async def release(self, ids: Sequence[uuid.UUID]) -> None:
        async with self._pool.connection() as conn:
            await conn.execute("UPDATE deferred_vectors SET claimed_until = '-infinity' WHERE id = ANY(%s)",
                               (list(ids),))
