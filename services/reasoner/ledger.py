"""The inference ledger (schema ``reasoner``): finished inferences keyed by their input event.

Lookups and records of events handled at the same moment go to PostgreSQL together, one statement for
all of them (``agentbus.batching.Coalescer``); an event handled alone is a batch of one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from agentbus.db import coalesced, columns, record_batch, replay_run
from agentbus.events import Event, parse_event
from agentbus.services.reasoner.llm import Completion

_Lookup = tuple[list[Event] | None, Completion | None]
_Record = tuple[Event, uuid.UUID, str, list[dict[str, Any]], Completion, Sequence[Event], bool]

_LOOKUP_COLUMNS = (
    "i.output_text, i.model, i.provider, i.prompt_tokens, i.completion_tokens, i.finish_reason, "
    "i.latency_ms, i.attempts, i.models_tried"
)


def _completion(r: Sequence[Any]) -> Completion | None:
    """A finished inference from the nine ``_LOOKUP_COLUMNS``; None where there is none."""
    return Completion(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], tuple(r[8])) if r[0] is not None else None


def _inference_row(item: _Record) -> tuple[object, ...]:
    event, ledger_key, agent, request, c, _, _ = item
    # models_tried is an array per row: unnest would flatten an array of arrays, so it goes as jsonb
    return (ledger_key, event.correlation_id, agent, c.model, c.provider, Jsonb(list(c.models_tried)), c.attempts,
            Jsonb(request), c.text, c.prompt_tokens, c.completion_tokens, c.finish_reason, float(c.latency_ms))


class Ledger:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool
        self._lookups = coalesced(self._lookup_many)
        self._records = coalesced(self._record_many)

    async def aclose(self) -> None:
        await self._lookups.aclose()
        await self._records.aclose()

    async def lookup(self, event: Event) -> _Lookup:
        """The outputs recorded for this input (a redelivery), and its finished inference."""
        return await self._lookups(event)

    async def _lookup_many(self, events: list[Event]) -> list[_Lookup]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT q.n, p.outputs, {_LOOKUP_COLUMNS} "
                "FROM unnest(%b::int[], %b::uuid[], %b::text[]) AS q(n, eid, run) "
                "LEFT JOIN processed_events p ON p.event_id = q.eid AND p.replay_run = q.run "
                "LEFT JOIN inferences i ON i.input_event_id = q.eid",
                (list(range(len(events))), [e.id for e in events], [replay_run(e) for e in events]),
            )
            rows = await cur.fetchall()
        found: dict[int, _Lookup] = {
            r[0]: ([parse_event(o) for o in r[1]] if r[1] is not None else None, _completion(r[2:])) for r in rows
        }
        return [found[n] for n in range(len(events))]

    async def find(self, input_event_id: uuid.UUID) -> Completion | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_LOOKUP_COLUMNS} FROM inferences i WHERE i.input_event_id = %s", (input_event_id,)
            )
            r = await cur.fetchone()
        return None if r is None else _completion(r)

    async def record(
        self,
        event: Event,
        ledger_key: uuid.UUID,
        agent: str,
        request: list[dict[str, Any]],
        c: Completion,
        outputs: Sequence[Event],
        store_inference: bool = True,
    ) -> list[Event]:
        """The inference and the processed record in one statement; the first writer wins."""
        return await self._records((event, ledger_key, agent, request, c, outputs, store_inference))

    async def _record_many(self, items: list[_Record]) -> list[list[Event]]:
        rows = [_inference_row(item) for item in items if item[6]]
        cols = columns(rows, 13)
        async with self._pool.connection() as conn:
            return await record_batch(
                conn, [(item[0], item[5]) for item in items],
                ("INSERT INTO inferences (input_event_id, correlation_id, agent, model, provider, models_tried, "
                 "attempts, request, output_text, prompt_tokens, completion_tokens, finish_reason, latency_ms) "
                 "SELECT k, c, a, m, p, ARRAY(SELECT jsonb_array_elements_text(t)), n, r, o, pt, ct, f, l "
                 "FROM unnest(%b::uuid[], %b::uuid[], %b::text[], %b::text[], %b::text[], %b::jsonb[], %b::int[], "
                 "%b::jsonb[], %b::text[], %b::int[], %b::int[], %b::text[], %b::float8[]) "
                 "AS u(k, c, a, m, p, t, n, r, o, pt, ct, f, l) ON CONFLICT (input_event_id) DO NOTHING", cols),
            )
