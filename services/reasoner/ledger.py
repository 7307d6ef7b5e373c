"""The inference ledger (schema ``reasoner``): finished inferences keyed by their input event, and the
recorded steps of tool loops.

Lookups and records of events handled at the same moment go to PostgreSQL together, one statement for
all of them (``agentbus.batching.Coalescer``); an event handled alone is a batch of one. A lookup brings the
input's recorded steps along in the same statement, so an agent without tools pays nothing for them.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from agentbus.db import coalesced, columns, opened_outputs, record_batch, replay_run
from agentbus.events import ContextAssembled, ContextAssembledData, Event
from agentbus.sealing import Keyring
from agentbus.services.reasoner.ports import Completion, Lookup, Record, StepRecord

_COMPLETION = ("output_text", "model", "provider", "prompt_tokens", "completion_tokens", "finish_reason",
               "latency_ms", "attempts", "models_tried")


def _completion(row: dict[str, Any]) -> Completion | None:
    """A finished inference from its columns; None where there is none."""
    if row["output_text"] is None:
        return None
    return Completion(text=row["output_text"], model=row["model"], provider=row["provider"],
                      prompt_tokens=row["prompt_tokens"], completion_tokens=row["completion_tokens"],
                      finish_reason=row["finish_reason"], latency_ms=row["latency_ms"], attempts=row["attempts"],
                      models_tried=tuple(row["models_tried"]))


def owners_of(ctx: ContextAssembledData) -> list[str]:
    """The people whose text a context holds: who asks, and whose turns and memories it brings along."""
    found = [ctx.asker.id if ctx.asker is not None else None, ctx.input.owner,
             *(t.owner for t in ctx.history), *(t.owner for t in ctx.earlier), *(m.owner for m in ctx.memories)]
    return sorted({o for o in found if o})


def _plus(tokens: int | None, extra: int) -> int | None:
    return tokens if not extra else (tokens or 0) + extra


def _inference_row(r: Record) -> tuple[object, ...]:
    c = r.completion
    prompt, completion = _plus(c.prompt_tokens, r.extra_tokens[0]), _plus(c.completion_tokens, r.extra_tokens[1])
    # models_tried and owners are arrays per row: unnest would flatten an array of arrays, so they go as jsonb
    return (r.event.id, r.event.correlation_id, r.agent, c.model, c.provider, Jsonb(list(c.models_tried)),
            c.attempts, Jsonb(r.request), c.text, prompt, completion, c.finish_reason,
            float(c.latency_ms), r.event.tenant, r.event.conversation, Jsonb(owners_of(r.event.data)))


class Ledger:
    def __init__(self, pool: AsyncConnectionPool, keyring: Keyring | None = None) -> None:
        self._pool = pool
        self._keyring = keyring  # the recorded outputs hold the people's text sealed, as the topics do
        self._lookups = coalesced(self._lookup_many)
        self._records = coalesced(self._record_many)
        self._steps = coalesced(self._record_steps)

    async def aclose(self) -> None:
        await self._lookups.aclose()
        await self._records.aclose()
        await self._steps.aclose()

    async def lookup(self, event: ContextAssembled) -> Lookup:
        """The outputs recorded for this input (a redelivery), its finished inference, its recorded steps."""
        return await self._lookups(event)

    async def _lookup_many(self, events: list[ContextAssembled]) -> list[Lookup]:
        cols = ", ".join(f"i.{c}" for c in _COMPLETION)
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT q.n, p.outputs, {cols}, s.steps "
                "FROM unnest(%b::int[], %b::uuid[], %b::text[]) AS q(n, eid, run) "
                "LEFT JOIN processed_events p ON p.event_id = q.eid AND p.replay_run = q.run "
                "LEFT JOIN inferences i ON i.input_event_id = q.eid "
                "LEFT JOIN LATERAL (SELECT jsonb_agg(jsonb_build_array(n, call_id, kind, data) ORDER BY n, call_id) "
                "AS steps FROM steps WHERE input_event_id = q.eid) s ON true",
                (list(range(len(events))), [e.id for e in events], [replay_run(e) for e in events]),
            )
            names = [d.name for d in cur.description or ()]
            rows = [dict(zip(names, r, strict=True)) for r in await cur.fetchall()]
        found: dict[int, Lookup] = {}
        for r in rows:
            outputs = await opened_outputs(r["outputs"], self._keyring) if r["outputs"] is not None else None
            steps = tuple(StepRecord(n=s[0], call_id=s[1], kind=s[2], data=s[3]) for s in r["steps"] or ())
            found[r["n"]] = Lookup(outputs, _completion(r), steps)
        return [found[n] for n in range(len(events))]

    async def record(self, record: Record) -> list[Event]:
        """The inference and the processed record in one statement; the first writer wins."""
        return await self._records(record)

    async def _record_many(self, items: list[Record]) -> list[list[Event]]:
        cols = columns([_inference_row(r) for r in items if r.store_inference], 16)
        async with self._pool.connection() as conn:
            return await record_batch(
                conn, [(r.event, r.outputs) for r in items],
                ("INSERT INTO inferences (input_event_id, correlation_id, agent, model, provider, models_tried, "
                 "attempts, request, output_text, prompt_tokens, completion_tokens, finish_reason, latency_ms, "
                 "tenant, conversation, owners) "
                 "SELECT k, c, a, m, p, ARRAY(SELECT jsonb_array_elements_text(t)), n, r, o, pt, ct, f, l, tn, cv, "
                 "ARRAY(SELECT jsonb_array_elements_text(w)) "
                 "FROM unnest(%b::uuid[], %b::uuid[], %b::text[], %b::text[], %b::text[], %b::jsonb[], %b::int[], "
                 "%b::jsonb[], %b::text[], %b::int[], %b::int[], %b::text[], %b::float8[], %b::text[], %b::text[], "
                 "%b::jsonb[]) AS u(k, c, a, m, p, t, n, r, o, pt, ct, f, l, tn, cv, w) "
                 "ON CONFLICT (input_event_id) DO NOTHING",
                 cols),
                keyring=self._keyring,
            )

    async def record_step(self, event: ContextAssembled, step: StepRecord) -> None:
        """One step of the input's tool loop; a step already recorded (by an earlier delivery) is kept. Steps
        recorded at the same moment (parallel tool calls, other conversations) share one statement."""
        await self._steps((event, step))

    async def _record_steps(self, items: list[tuple[ContextAssembled, StepRecord]]) -> list[None]:
        rows = [(e.id, s.n, s.call_id, s.kind, Jsonb(s.data), e.tenant, Jsonb(owners_of(e.data))) for e, s in items]
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO steps (input_event_id, n, call_id, kind, data, tenant, owners) "
                "SELECT k, n, c, d, x, t, ARRAY(SELECT jsonb_array_elements_text(w)) FROM unnest(%b::uuid[], "
                "%b::int[], %b::text[], %b::text[], %b::jsonb[], %b::text[], %b::jsonb[]) AS u(k, n, c, d, x, t, w) "
                "ON CONFLICT DO NOTHING",
                columns(rows, 7),
            )
        return [None] * len(items)

