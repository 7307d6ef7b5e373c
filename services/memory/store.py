"""Conversation history in PostgreSQL (schema ``memory``), written together with the processed record.

Events handled at the same moment (the consumer runs many conversations at once) are stored together:
one statement reads the history of every conversation in the batch, and one statement writes every turn
with every processed record. Under load that is two round trips for tens of events instead of two per
event; at low load a batch is the events of one turn of the event loop, so nothing waits for a timer.
If a batch fails, each of its events is tried on its own, so one bad event cannot fail the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from agentbus.db import coalesced, columns, record_batch
from agentbus.events import Event, Turn


@dataclass
class _Remember:
    event: Event
    turn: Turn | None
    history_limit: int
    build: Callable[[list[Turn]], Sequence[Event]]
    before: datetime


class PgTurnStore:
    def __init__(self, pool: AsyncConnectionPool, max_batch: int = 256) -> None:
        self._pool = pool
        self._remember = coalesced(self._remember_many, max_batch)

    async def remember(
        self,
        event: Event,
        turn: Turn | None,
        history_limit: int,
        build: Callable[[list[Turn]], Sequence[Event]],
        before: datetime | None = None,
    ) -> list[Event]:
        """Store the turn, read the history before it, record the outputs built from it (with the turn).

        A replayed event stores nothing (``turn`` None) and sees the history as it was at ``before``.
        Returns the outputs recorded for the event: those just built, or, for an event another worker
        recorded first, that worker's."""
        before = before or (turn.at if turn is not None else datetime.now(UTC))
        return await self._remember(_Remember(event, turn, history_limit, build, before))

    async def aclose(self) -> None:
        await self._remember.aclose()

    async def _remember_many(self, items: list[_Remember]) -> list[list[Event] | Exception]:
        results: list[list[Event] | Exception] = []
        async with self._pool.connection() as conn:
            histories = await _histories(conn, items)
            built: list[tuple[int, Event, list[Event]]] = []
            turns: list[tuple[object, ...]] = []
            for i, (item, history) in enumerate(zip(items, histories, strict=True)):
                try:
                    outputs = list(item.build(history))
                except Exception as exc:  # this event's outputs cannot be made: it alone fails, unwritten
                    results.append(exc)
                    continue
                results.append(outputs)
                e, t = item.event, item.turn
                built.append((i, e, outputs))
                if t is not None:
                    turns.append((e.id, e.tenant, e.conversation, t.role, t.sender, t.text, t.at))
            # events of one conversation are processed one at a time, so reading the history and then
            # writing the turn with the processed record (one statement) cannot interleave with another turn
            recorded = await record_batch(
                conn, [(e, outs) for _, e, outs in built],
                ("INSERT INTO turns (event_id, tenant, conversation, role, sender, text, at) "
                 "SELECT * FROM unnest(%b::uuid[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], "
                 "%b::timestamptz[]) ON CONFLICT (event_id) DO NOTHING", columns(turns, 7)),
            )
        for (i, _, _), outputs in zip(built, recorded, strict=True):
            results[i] = outputs
        return results

    async def history(self, conversation: str, limit: int = 50) -> list[Turn]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT role, text, at, event_id, sender FROM turns WHERE conversation = %s "
                "ORDER BY at DESC, seq DESC LIMIT %s",
                (conversation, limit),
            )
            rows = await cur.fetchall()
        return [Turn(role=r[0], text=r[1], at=r[2], event_id=r[3], sender=r[4]) for r in reversed(rows)]


async def _histories(conn: AsyncConnection, items: list[_Remember]) -> list[list[Turn]]:
    """The history before each item's turn (oldest first), for every item in one statement."""
    histories: list[list[Turn]] = [[] for _ in items]
    asking = [i for i, item in enumerate(items) if item.history_limit > 0]
    if not asking:
        return histories
    cur = await conn.execute(
        "SELECT q.i, h.role, h.text, h.at, h.event_id, h.sender "
        "FROM unnest(%b::int[], %b::text[], %b::uuid[], %b::timestamptz[], %b::int[]) AS q(i, conv, eid, before, lim) "
        "CROSS JOIN LATERAL (SELECT role, text, at, event_id, sender, seq FROM turns "
        "WHERE conversation = q.conv AND event_id <> q.eid AND at <= q.before "
        "ORDER BY at DESC, seq DESC LIMIT q.lim) AS h "
        "ORDER BY q.i, h.at, h.seq",
        (
            asking,
            [items[i].event.conversation for i in asking],
            [items[i].event.id for i in asking],
            [items[i].before for i in asking],
            [items[i].history_limit for i in asking],
        ),
    )
    for i, role, text, at, event_id, sender in await cur.fetchall():
        histories[i].append(Turn(role=role, text=text, at=at, event_id=event_id, sender=sender))
    return histories
