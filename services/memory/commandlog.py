"""The record of applied memory commands (``memory_commands``), written with the processed-events record.

It answers "was this command applied?" before the handler touches the vector store, and keeps what each
forget deleted (ids only: the forgotten text is gone), for operators and audits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from psycopg_pool import AsyncConnectionPool

from agentbus.db import processed_outputs, record_batch
from agentbus.events import Event, MemoryRequested


class PgCommandLog:
    """The ``CommandLog`` port over memory's schema."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def applied(self, event: Event) -> bool:
        async with self._pool.connection() as conn:
            return await processed_outputs(conn, event) is not None

    async def record(self, event: MemoryRequested, deleted: Sequence[uuid.UUID]) -> None:
        d = event.data
        async with self._pool.connection() as conn:
            await record_batch(conn, [(event, [])], (
                "INSERT INTO memory_commands (event_id, tenant, action, subject, requested_by, deleted) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING",
                [event.id, event.tenant, d.action, d.subject, d.requested_by, list(deleted)],
            ))

    async def deleted_by(self, event_id: uuid.UUID) -> list[uuid.UUID] | None:
        """What the command deleted (None: not applied)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT deleted FROM memory_commands WHERE event_id = %s", (event_id,))
            row = await cur.fetchone()
        return None if row is None else list(row[0])
