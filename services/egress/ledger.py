"""The delivery ledger (schema ``egress``): claim before push, outcome after, in the processed record."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Literal

from psycopg_pool import AsyncConnectionPool

from agentbus.db import processed_outputs, record_with_effects
from agentbus.events import Event

Claim = Literal["claimed", "ambiguous"]


class DeliveryLedger:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def already(self, event: Event) -> list[Event] | None:
        async with self._pool.connection() as conn:
            return await processed_outputs(conn, event)

    async def claim(self, event: Event, target: str) -> Claim | list[Event]:
        """'claimed': push it; 'ambiguous': a previous push may have reached the platform; a list: done."""
        d = event.data
        async with self._pool.connection() as conn:
            # the common case, a reply never seen before, is one round trip
            cur = await conn.execute(
                "INSERT INTO deliveries (reply_id, correlation_id, channel, channel_type, target, status) "
                "VALUES (%s, %s, %s, %s, %s, 'pushing') ON CONFLICT (reply_id) DO NOTHING RETURNING 1",
                (event.id, event.correlation_id, d.channel, d.channel_type, target),
            )
            if await cur.fetchone() is not None:
                return "claimed"
        async with self._pool.connection() as conn, conn.transaction():
            previous = await processed_outputs(conn, event)
            if previous is not None:
                return previous
            cur = await conn.execute("SELECT status FROM deliveries WHERE reply_id = %s FOR UPDATE", (event.id,))
            row = await cur.fetchone()
            if row is None:
                await conn.execute(
                    "INSERT INTO deliveries (reply_id, correlation_id, channel, channel_type, target, status) "
                    "VALUES (%s, %s, %s, %s, %s, 'pushing')",
                    (event.id, event.correlation_id, d.channel, d.channel_type, target),
                )
                return "claimed"
            if row[0] == "pending":  # known not delivered (released after retryable failures)
                await conn.execute("UPDATE deliveries SET status = 'pushing' WHERE reply_id = %s", (event.id,))
                return "claimed"
            return "ambiguous"

    async def record_only(self, event: Event, outputs: Sequence[Event]) -> list[Event]:
        async with self._pool.connection() as conn:
            return await record_with_effects(conn, event, outputs)

    async def release(self, reply_id: uuid.UUID, attempts: int, error: str, http_status: int | None) -> None:
        """Not delivered yet, and known not to be: a later attempt may push again."""
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE deliveries SET status = 'pending', attempts = attempts + %s, error = %s, http_status = %s "
                "WHERE reply_id = %s AND status = 'pushing'",
                (attempts, error, http_status, reply_id),
            )

    async def finish(
        self,
        event: Event,
        target: str,
        status: str,
        attempts: int,
        http_status: int | None,
        error: str | None,
        platform_message_id: str | None,
        outputs: Sequence[Event],
    ) -> list[Event]:
        d = event.data
        upsert = (
            "INSERT INTO deliveries (reply_id, correlation_id, channel, channel_type, target, status, attempts, "
            "http_status, error, platform_message_id, finished_at) "
            "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s, now()) ON CONFLICT (reply_id) DO UPDATE SET "
            "status = EXCLUDED.status, attempts = deliveries.attempts + EXCLUDED.attempts, "
            "http_status = EXCLUDED.http_status, error = EXCLUDED.error, "
            "platform_message_id = EXCLUDED.platform_message_id, finished_at = now() "
            # a reply already recorded as processed keeps its outcome
            "WHERE NOT EXISTS (SELECT 1 FROM processed_events WHERE event_id = %s AND replay_run = '')",
            (event.id, event.correlation_id, d.channel, d.channel_type, target, status, attempts, http_status,
             error, platform_message_id, event.id),
        )
        async with self._pool.connection() as conn:
            return await record_with_effects(conn, event, outputs, [upsert])
