"""Conversation history in PostgreSQL (schema ``memory``), written together with the processed record."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from psycopg_pool import AsyncConnectionPool

from agentbus.db import processed_outputs, record_with_effects
from agentbus.events import Event, Turn


class PgTurnStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def already(self, event: Event) -> list[Event] | None:
        async with self._pool.connection() as conn:
            return await processed_outputs(conn, event)

    async def remember(
        self,
        event: Event,
        turn: Turn | None,
        history_limit: int,
        build: Callable[[list[Turn]], Sequence[Event]],
        before: datetime | None = None,
    ) -> list[Event]:
        """In one transaction: store the turn, read the history before it, record the outputs built from it.

        A replayed event stores nothing (``turn`` None) and sees the history as it was at ``before``."""
        before = before or (turn.at if turn is not None else datetime.now(UTC))
        async with self._pool.connection() as conn:
            history: list[Turn] = []
            if history_limit > 0:
                cur = await conn.execute(
                    "SELECT role, text, at, event_id, sender FROM turns WHERE conversation = %s "
                    "AND event_id <> %s AND at <= %s ORDER BY at DESC, seq DESC LIMIT %s",
                    (event.conversation, event.id, before, history_limit),
                )
                rows = await cur.fetchall()
                history = [Turn(role=r[0], text=r[1], at=r[2], event_id=r[3], sender=r[4]) for r in reversed(rows)]
            effects = []
            if turn is not None:
                effects.append((
                    "INSERT INTO turns (event_id, tenant, conversation, role, sender, text, at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING",
                    (event.id, event.tenant, event.conversation, turn.role, turn.sender, turn.text, turn.at),
                ))
            # events of one conversation are processed one at a time, so reading the history and then
            # writing the turn with the processed record (one statement) cannot interleave with another turn
            return await record_with_effects(conn, event, list(build(history)), effects)

    async def history(self, conversation: str, limit: int = 50) -> list[Turn]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT role, text, at, event_id, sender FROM turns WHERE conversation = %s "
                "ORDER BY at DESC, seq DESC LIMIT %s",
                (conversation, limit),
            )
            rows = await cur.fetchall()
        return [Turn(role=r[0], text=r[1], at=r[2], event_id=r[3], sender=r[4]) for r in reversed(rows)]
