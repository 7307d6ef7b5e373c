"""The inference ledger (schema ``reasoner``): finished inferences keyed by their input event."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from agentbus.db import processed_outputs, record_with_effects, replay_run
from agentbus.events import Event, parse_event
from agentbus.services.reasoner.llm import Completion


class Ledger:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def already(self, event: Event) -> list[Event] | None:
        async with self._pool.connection() as conn:
            return await processed_outputs(conn, event)

    async def lookup(self, event: Event) -> tuple[list[Event] | None, Completion | None]:
        """In one round trip: the outputs recorded for this input (a redelivery), and its finished inference."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT (SELECT outputs FROM processed_events WHERE event_id = %s AND replay_run = %s), "
                "i.output_text, i.model, i.provider, i.prompt_tokens, i.completion_tokens, i.finish_reason, "
                "i.latency_ms, i.attempts, i.models_tried "
                "FROM (SELECT 1) AS one LEFT JOIN inferences i ON i.input_event_id = %s",
                (event.id, replay_run(event), event.id),
            )
            r = await cur.fetchone()
        assert r is not None
        previous = [parse_event(o) for o in r[0]] if r[0] is not None else None
        found = Completion(r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], tuple(r[9])) if r[1] is not None else None
        return previous, found

    async def find(self, input_event_id: uuid.UUID) -> Completion | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT output_text, model, provider, prompt_tokens, completion_tokens, finish_reason, "
                "latency_ms, attempts, models_tried FROM inferences WHERE input_event_id = %s",
                (input_event_id,),
            )
            r = await cur.fetchone()
        if r is None:
            return None
        return Completion(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], tuple(r[8]))

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
        effects = []
        if store_inference:
            effects.append((
                "INSERT INTO inferences (input_event_id, correlation_id, agent, model, provider, models_tried, "
                "attempts, request, output_text, prompt_tokens, completion_tokens, finish_reason, latency_ms) "
                "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (input_event_id) DO NOTHING",
                (
                    ledger_key, event.correlation_id, agent, c.model, c.provider, list(c.models_tried),
                    c.attempts, Jsonb(request), c.text, c.prompt_tokens, c.completion_tokens,
                    c.finish_reason, c.latency_ms,
                ),
            ))
        async with self._pool.connection() as conn:
            return await record_with_effects(conn, event, outputs, effects)
