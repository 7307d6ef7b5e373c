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

from agentbus.batching import MicroBatcher
from agentbus.db import outputs_json, processed_outputs, record_with_effects, replay_run
from agentbus.events import Event, Turn

_INSERT_TURN = (
    "INSERT INTO turns (event_id, tenant, conversation, role, sender, text, at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING"
)


@dataclass
class _Remember:
    event: Event
    turn: Turn | None
    history_limit: int
    build: Callable[[list[Turn]], Sequence[Event]]
    before: datetime


_Result = list[Event] | Exception


class PgTurnStore:
    def __init__(self, pool: AsyncConnectionPool, max_batch: int = 256) -> None:
        self._pool = pool
        # flushed on the next turn of the event loop: a batch is what was asked for together
        self._batches: MicroBatcher[_Remember, _Result] = MicroBatcher(self._remember_batch, max_batch, 0.0)

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
        """Store the turn, read the history before it, record the outputs built from it (with the turn).

        A replayed event stores nothing (``turn`` None) and sees the history as it was at ``before``.
        Returns the outputs recorded for the event: those just built, or, for an event another worker
        recorded first, that worker's."""
        before = before or (turn.at if turn is not None else datetime.now(UTC))
        [result] = await self._batches.submit("", [_Remember(event, turn, history_limit, build, before)])
        if isinstance(result, Exception):
            raise result
        return result

    async def aclose(self) -> None:
        await self._batches.aclose()

    # ------------------------------------------------------------------ batches

    async def _remember_batch(self, _: str, items: list[_Remember]) -> list[_Result]:
        if len(items) > 1:
            try:
                return await self._remember_many(items)
            except Exception:  # noqa: BLE001 - each event is tried alone below, and fails on its own
                pass
        results: list[_Result] = []
        for item in items:
            try:
                results.append(await self._remember_one(item))
            except Exception as exc:  # handed to this event only, which the consumer retries
                results.append(exc)
        return results

    async def _remember_one(self, item: _Remember) -> list[Event]:
        event, turn = item.event, item.turn
        async with self._pool.connection() as conn:
            histories = await _histories(conn, [item])
            effects = []
            if turn is not None:
                effects.append((
                    _INSERT_TURN,
                    (event.id, event.tenant, event.conversation, turn.role, turn.sender, turn.text, turn.at),
                ))
            # events of one conversation are processed one at a time, so reading the history and then
            # writing the turn with the processed record (one statement) cannot interleave with another turn
            return await record_with_effects(conn, event, list(item.build(histories[0])), effects)

    async def _remember_many(self, items: list[_Remember]) -> list[_Result]:
        async with self._pool.connection() as conn:
            histories = await _histories(conn, items)
            results: list[_Result | None] = [None] * len(items)
            built: dict[int, list[Event]] = {}
            for i, (item, history) in enumerate(zip(items, histories, strict=True)):
                try:
                    built[i] = list(item.build(history))
                except Exception as exc:  # this event's outputs cannot be made: it alone fails
                    results[i] = exc
            writing = list(built)
            stored = [i for i in writing if items[i].turn is not None]
            turn_cols: tuple[list[object], ...] = ([], [], [], [], [], [], [])
            for i in stored:
                e, t = items[i].event, items[i].turn
                assert t is not None
                for col, v in zip(turn_cols, (e.id, e.tenant, e.conversation, t.role, t.sender, t.text, t.at),
                                  strict=True):
                    col.append(v)
            cur = await conn.execute(
                "WITH t AS (INSERT INTO turns (event_id, tenant, conversation, role, sender, text, at) "
                "SELECT * FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], "
                "%s::timestamptz[]) ON CONFLICT (event_id) DO NOTHING) "
                "INSERT INTO processed_events (event_id, replay_run, event_type, outputs) "
                "SELECT * FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::jsonb[]) "
                "ON CONFLICT (event_id, replay_run) DO NOTHING RETURNING event_id, replay_run",
                (
                    *turn_cols,
                    [items[i].event.id for i in writing],
                    [replay_run(items[i].event) for i in writing],
                    [items[i].event.TYPE for i in writing],
                    [outputs_json(built[i]) for i in writing],
                ),
            )
            recorded = {(r[0], r[1]) for r in await cur.fetchall()}
            for i in writing:
                event = items[i].event
                if (event.id, replay_run(event)) in recorded:
                    results[i] = built[i]
                    continue
                # recorded before (a redelivery, or another replica): its first outputs stand
                previous = await processed_outputs(conn, event)
                if previous is None:  # pragma: no cover - the conflicting row cannot vanish
                    raise RuntimeError("processed record conflict without a record")
                results[i] = previous
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

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
        "FROM unnest(%s::int[], %s::text[], %s::uuid[], %s::timestamptz[], %s::int[]) AS q(i, conv, eid, before, lim) "
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
