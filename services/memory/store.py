"""Conversation history in PostgreSQL (schema ``memory``), written together with the processed record.

Events handled at the same moment (the consumer runs many conversations at once) are read and written
together: one statement reads the history of every conversation asking at that moment, and one statement
writes every turn with every processed record. Under load that is two round trips for tens of events
instead of two per event; at low load a batch is the calls of one turn of the event loop, so nothing waits
for a timer. If a batch fails, each of its calls is tried on its own, so one bad event cannot fail the others.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from agentbus.db import coalesced, columns, record_batch
from agentbus.events import Event, Turn
from agentbus.sealing import Keyring


@dataclass(frozen=True)
class _Read:
    conversation: str
    limit: int
    before: datetime | None
    exclude: uuid.UUID | None
    since: datetime | None = None


@dataclass(frozen=True)
class _Write:
    event: Event
    turn: Turn | None
    outputs: Sequence[Event]


class PgTurnStore:
    """The ``TurnStore`` port over memory's ``turns`` table and the processed-events record."""

    def __init__(self, pool: AsyncConnectionPool, max_batch: int = 256, keyring: Keyring | None = None) -> None:
        self._pool = pool
        self._keyring = keyring  # the recorded outputs hold the people's text sealed, as the topics do
        self._reads = coalesced(self._histories_many, max_batch)
        self._writes = coalesced(self._remember_many, max_batch)

    async def history(
        self, conversation: str, limit: int = 50, before: datetime | None = None, exclude: uuid.UUID | None = None,
        since: datetime | None = None,
    ) -> list[Turn]:
        if limit <= 0:
            return []
        return await self._reads(_Read(conversation, limit, before, exclude, since))

    async def remember(self, event: Event, turn: Turn | None, outputs: Sequence[Event]) -> list[Event]:
        return await self._writes(_Write(event, turn, outputs))

    async def aclose(self) -> None:
        await self._reads.aclose()
        await self._writes.aclose()

    async def _histories_many(self, items: list[_Read]) -> list[list[Turn]]:
        """The history each item asks for (oldest first), for every item in one statement."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT q.i, h.role, h.text, h.at, h.event_id, h.sender, h.owner "
                "FROM unnest(%b::int[], %b::text[], %b::uuid[], %b::timestamptz[], %b::int[], %b::timestamptz[]) "
                "AS q(i, conv, eid, before, lim, since) "
                "CROSS JOIN LATERAL (SELECT role, text, at, event_id, sender, owner, seq FROM turns "
                "WHERE conversation = q.conv AND event_id IS DISTINCT FROM q.eid "
                "AND at <= coalesce(q.before, 'infinity') AND at >= coalesce(q.since, '-infinity') "
                "ORDER BY at DESC, seq DESC LIMIT q.lim) AS h "
                "ORDER BY q.i, h.at, h.seq",
                (
                    list(range(len(items))),
                    [r.conversation for r in items],
                    [r.exclude for r in items],
                    [r.before for r in items],
                    [r.limit for r in items],
                    [r.since for r in items],
                ),
            )
            rows = await cur.fetchall()
        histories: list[list[Turn]] = [[] for _ in items]
        for i, role, text, at, event_id, sender, owner in rows:
            histories[i].append(Turn(role=role, text=text, at=at, event_id=event_id, sender=sender, owner=owner))
        return histories

    async def _remember_many(self, items: list[_Write]) -> list[list[Event]]:
        # events of one conversation are handled one at a time, so a history read and the write of the turn
        # that follows it cannot interleave with another turn of the conversation
        turns = [(w.event.id, w.event.tenant, w.event.conversation, w.turn.role, w.turn.sender, w.turn.text,
                  w.turn.at, w.event.correlation_id, _attachments(w.turn), w.turn.owner)
                 for w in items if w.turn is not None]
        async with self._pool.connection() as conn:
            return await record_batch(
                conn, [(w.event, w.outputs) for w in items],
                ("INSERT INTO turns (event_id, tenant, conversation, role, sender, text, at, correlation_id, "
                 "attachments, owner) SELECT * FROM unnest(%b::uuid[], %b::text[], %b::text[], %b::text[], "
                 "%b::text[], %b::text[], %b::timestamptz[], %b::uuid[], %b::jsonb[], %b::text[]) "
                 "ON CONFLICT (event_id) DO NOTHING",
                 columns(turns, 10)),
                keyring=self._keyring,
            )


def _attachments(turn: Turn) -> Jsonb:
    """The turn's attachments by reference (what the blob store or a URL holds; never bytes)."""
    return Jsonb([a.model_dump(mode="json", exclude_none=True) for a in turn.attachments])
