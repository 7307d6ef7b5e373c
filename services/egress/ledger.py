"""The delivery ledger (schema ``egress``): claim before push, outcome after, in the processed record.

A row's ``attempts`` add up every round's pushes (a round that ran out of attempts releases the reply with
its count), and a claim hands back the count so far, so delivery.completed can report the same total.

Claims and outcomes of replies handled at the same moment go to PostgreSQL together, one statement for
all of them (``agentbus.batching.Coalescer``); a reply handled alone is a batch of one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from agentbus.db import coalesced, columns, processed_outputs, record_batch
from agentbus.events import Event, ReplyGenerated
from agentbus.services.egress.ports import Claim, Outcome

# a delivery row in one of these was written with its reply's processed record: the reply was handled
FINISHED = ("delivered", "failed", "suppressed")


@dataclass(frozen=True)
class _Claiming:
    event: ReplyGenerated
    target: str


@dataclass(frozen=True)
class _Finishing:
    event: ReplyGenerated
    target: str
    outcome: Outcome
    outputs: Sequence[Event]


class PgDeliveryLedger:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool
        self._claims = coalesced(self._claim_many)
        self._finishes = coalesced(self._finish_many)

    async def aclose(self) -> None:
        await self._claims.aclose()
        await self._finishes.aclose()

    async def claim(self, event: ReplyGenerated, target: str) -> Claim | list[Event]:
        """Claimed: push it; ambiguous: a previous push may have reached the platform; a list: done."""
        d = event.data
        # the common case, a reply never seen before, is one statement (shared with the replies claimed
        # at the same moment)
        if await self._claims(_Claiming(event, target)):
            return Claim("claimed")
        async with self._pool.connection() as conn, conn.transaction():
            previous = await processed_outputs(conn, event)
            if previous is not None:
                return previous
            cur = await conn.execute(
                "SELECT status, attempts FROM deliveries WHERE reply_id = %s FOR UPDATE", (event.id,)
            )
            row = await cur.fetchone()
            if row is None:
                await conn.execute(
                    "INSERT INTO deliveries (reply_id, correlation_id, channel, channel_type, target, status, "
                    "tenant, conversation) VALUES (%s, %s, %s, %s, %s, 'pushing', %s, %s)",
                    (event.id, event.correlation_id, d.channel, d.channel_type, target, event.tenant,
                     event.conversation),
                )
                return Claim("claimed")
            status, attempts = row
            if status in FINISHED:  # handled once, its processed record pruned since (retention): done
                return []
            if status == "pending":  # known not delivered (released after retryable failures)
                await conn.execute("UPDATE deliveries SET status = 'pushing' WHERE reply_id = %s", (event.id,))
                return Claim("claimed", previous_attempts=attempts)
            return Claim("ambiguous", previous_attempts=attempts)

    async def _claim_many(self, items: list[_Claiming]) -> list[bool]:
        rows = [(i.event.id, i.event.correlation_id, i.event.data.channel, i.event.data.channel_type, i.target,
                 i.event.tenant, i.event.conversation) for i in items]
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO deliveries (reply_id, correlation_id, channel, channel_type, target, tenant, "
                "conversation, status) SELECT *, 'pushing' FROM unnest(%b::uuid[], %b::uuid[], %b::text[], "
                "%b::text[], %b::text[], %b::text[], %b::text[]) ON CONFLICT (reply_id) DO NOTHING RETURNING reply_id",
                columns(rows, 7),
            )
            claimed = {r[0] for r in await cur.fetchall()}
        return [i.event.id in claimed for i in items]

    async def record_only(self, event: ReplyGenerated, outputs: Sequence[Event]) -> list[Event]:
        async with self._pool.connection() as conn:
            [recorded] = await record_batch(conn, [(event, outputs)])
            return recorded

    async def release(self, reply_id: uuid.UUID, attempts: int, error: str, http_status: int | None) -> None:
        """Not delivered yet, and known not to be: a later attempt may push again."""
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE deliveries SET status = 'pending', attempts = attempts + %s, error = %s, http_status = %s "
                "WHERE reply_id = %s AND status = 'pushing'",
                (attempts, error, http_status, reply_id),
            )

    async def finish(
        self, event: ReplyGenerated, target: str, outcome: Outcome, outputs: Sequence[Event]
    ) -> list[Event]:
        return await self._finishes(_Finishing(event, target, outcome, outputs))

    async def _finish_many(self, items: list[_Finishing]) -> list[list[Event]]:
        rows = [
            (i.event.id, i.event.correlation_id, i.event.data.channel, i.event.data.channel_type, i.target,
             i.outcome.status, i.outcome.attempts, i.outcome.http_status, i.outcome.error,
             i.outcome.platform_message_id, i.event.tenant, i.event.conversation)
            for i in items
        ]
        upsert = (
            "INSERT INTO deliveries (reply_id, correlation_id, channel, channel_type, target, status, "
            "attempts, http_status, error, platform_message_id, tenant, conversation, finished_at) "
            "SELECT *, now() FROM unnest(%b::uuid[], %b::uuid[], %b::text[], %b::text[], %b::text[], %b::text[], "
            "%b::int[], %b::int[], %b::text[], %b::text[], %b::text[], %b::text[]) "
            "ON CONFLICT (reply_id) DO UPDATE SET "
            "status = EXCLUDED.status, attempts = deliveries.attempts + EXCLUDED.attempts, "
            "http_status = EXCLUDED.http_status, error = EXCLUDED.error, "
            "platform_message_id = EXCLUDED.platform_message_id, finished_at = now() "
            # a reply already recorded as processed keeps its outcome
            "WHERE NOT EXISTS (SELECT 1 FROM processed_events p WHERE p.event_id = EXCLUDED.reply_id "
            "AND p.replay_run = '')",
            columns(rows, 12),
        )
        async with self._pool.connection() as conn:
            return await record_batch(conn, [(i.event, i.outputs) for i in items], upsert)
