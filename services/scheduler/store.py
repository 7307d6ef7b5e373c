"""Jobs and firings in PostgreSQL (schema ``scheduler``).

Due jobs are claimed with ``FOR UPDATE SKIP LOCKED`` so replicas share the work; the firing row for a
(job, due time) is inserted once, with the event to publish, in the same transaction that advances the job.
Publishing happens after commit from the firings table (an outbox), and the event id is derived from the
job and due time, so a firing re-published after a crash is ignored downstream.

A command is applied under a per-job advisory lock, in one transaction that first checks the processed-event
record and the job's last applied command (``commands.decide``), then changes the job and records the event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

import structlog
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from agentbus.db import processed_outputs, raw_jsonb, record_processed
from agentbus.events import JobRequested, parse_event
from agentbus.schedules import ScheduleError
from agentbus.services.scheduler.commands import Current, decide, state_of
from agentbus.services.scheduler.ports import (
    REFUSED,
    CommandOutcome,
    Firing,
    JobChange,
    JobFilter,
    JobSpec,
    JobView,
)
from agentbus.services.scheduler.schedule import firing_event, first_due, next_due

log = structlog.get_logger("agentbus.scheduler")

SPEC = "job_id, source, kind, expr, timezone, tenant, agent, channel, chat_id, chat_type, prompt, reply_route"

# store a job's spec; its next due time stays unless its schedule changed or it comes back to agentbus.yaml
# (a finished one-off stays finished, missed runs stay due and coalesce). A cancelled job is never touched.
STORE_SPEC = """
INSERT INTO jobs (job_id, source, kind, expr, timezone, tenant, agent, channel, chat_id, chat_type, prompt,
                  reply_route, next_due, requested_by, last_command_at, updated_at)
VALUES (%(job_id)s, %(source)s, %(kind)s, %(expr)s, %(timezone)s, %(tenant)s, %(agent)s, %(channel)s,
        %(chat_id)s, %(chat_type)s, %(prompt)s, %(reply_route)s, %(due)s, %(requested_by)s, %(issued_at)s, now())
ON CONFLICT (job_id) DO UPDATE SET
    source = EXCLUDED.source, tenant = EXCLUDED.tenant, agent = EXCLUDED.agent, channel = EXCLUDED.channel,
    chat_id = EXCLUDED.chat_id, chat_type = EXCLUDED.chat_type, prompt = EXCLUDED.prompt,
    reply_route = EXCLUDED.reply_route,
    next_due = CASE WHEN (jobs.kind, jobs.expr, jobs.timezone) = (EXCLUDED.kind, EXCLUDED.expr, EXCLUDED.timezone)
                         AND jobs.removed_at IS NULL
                    THEN jobs.next_due ELSE EXCLUDED.next_due END,
    kind = EXCLUDED.kind, expr = EXCLUDED.expr, timezone = EXCLUDED.timezone, removed_at = NULL,
    requested_by = COALESCE(EXCLUDED.requested_by, jobs.requested_by),
    last_command_at = COALESCE(EXCLUDED.last_command_at, jobs.last_command_at), updated_at = now()
WHERE jobs.cancelled_at IS NULL
"""


def _spec_params(job: JobSpec, now: datetime, requested_by: str | None, issued_at: datetime | None) -> dict[str, Any]:
    return {**asdict(job), "reply_route": Jsonb(job.reply_route or {}), "requested_by": requested_by,
            "issued_at": issued_at, "due": first_due(job.kind, job.expr, job.timezone, now)}


class PgJobStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def sync_yaml(self, jobs: Sequence[JobSpec], now: datetime) -> list[str]:
        ids = [j.job_id for j in jobs]
        async with self._pool.connection() as conn, conn.transaction():
            for job in jobs:
                await conn.execute(STORE_SPEC, _spec_params(job, now, None, None))
            await conn.execute(
                "UPDATE jobs SET removed_at = now(), updated_at = now() "
                "WHERE source = 'yaml' AND removed_at IS NULL AND NOT (job_id = ANY(%s))", (ids,))
            cur = await conn.execute(
                "SELECT job_id FROM jobs WHERE job_id = ANY(%s) AND cancelled_at IS NOT NULL ORDER BY job_id", (ids,))
            return [r[0] for r in await cur.fetchall()]

    async def apply_command(self, event: JobRequested, change: JobChange, now: datetime) -> CommandOutcome:
        async with self._pool.connection() as conn, conn.transaction():
            # one command of a job at a time, across replicas (also for a job that does not exist yet)
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"agentbus.job:{change.job_id}",))
            if await processed_outputs(conn, event) is not None:
                return "duplicate"
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT tenant, source, kind, expr, timezone, paused_at, cancelled_at, last_command_at "
                "FROM jobs WHERE job_id = %s FOR UPDATE", (change.job_id,))
            row = await cur.fetchone()
            current = None if row is None else Current(row["tenant"], row["source"], row["cancelled_at"] is not None,
                                                       row["last_command_at"])
            outcome = decide(current, change)
            if outcome in REFUSED:
                return outcome
            if outcome == "applied":
                await self._apply(conn, row, change, now)
            await record_processed(conn, event, [])
            return outcome

    async def _apply(self, conn: AsyncConnection, row: dict[str, Any] | None, change: JobChange, now: datetime) -> None:
        by = {"job_id": change.job_id, "at": change.issued_at, "by": change.requested_by}
        if change.spec is not None:
            await conn.execute(STORE_SPEC, _spec_params(change.spec, now, change.requested_by, change.issued_at))
        elif change.action == "pause":
            await conn.execute(
                "UPDATE jobs SET paused_at = COALESCE(paused_at, %(at)s), last_command_at = %(at)s, "
                "requested_by = %(by)s, updated_at = now() WHERE job_id = %(job_id)s", by)
        elif change.action == "resume":
            assert row is not None  # decide() answers "unknown" for a job that does not exist
            # the next due time after now: the runs missed while paused are not made up for
            due = next_due(row["kind"], row["expr"], row["timezone"], now) if row["paused_at"] else None
            await conn.execute(
                "UPDATE jobs SET next_due = CASE WHEN paused_at IS NULL THEN next_due ELSE %(due)s END, "
                "paused_at = NULL, last_command_at = %(at)s, requested_by = %(by)s, updated_at = now() "
                "WHERE job_id = %(job_id)s", {**by, "due": due})
        elif change.action == "cancel":
            await conn.execute(
                "UPDATE jobs SET cancelled_at = %(at)s, next_due = NULL, last_command_at = %(at)s, "
                "requested_by = %(by)s, updated_at = now() WHERE job_id = %(job_id)s", by)
        else:  # pragma: no cover - create/update carry a spec (the handler builds it)
            raise ValueError(f"{change.action} without a job")

    async def claim_due(self, now: datetime, limit: int = 100) -> int:
        """Turn due jobs into firings and advance them; returns how many fired."""
        fired = 0
        async with self._pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {SPEC}, next_due FROM jobs WHERE enabled AND next_due <= %s "
                "ORDER BY next_due LIMIT %s FOR UPDATE SKIP LOCKED",
                (now, limit),
            )
            for row in await cur.fetchall():
                due = row.pop("next_due")
                job = JobSpec(**row)
                try:  # missed runs while nobody was up are coalesced into this one firing
                    nxt = next_due(job.kind, job.expr, job.timezone, max(due, now))
                except ScheduleError as err:  # a row from before schedules were checked: the others still fire
                    log.error("job_unschedulable", job_id=job.job_id, error=str(err))
                    continue
                event = firing_event(job, due, now)
                ins = await conn.execute(
                    "INSERT INTO firings (job_id, due_at, event_id, event) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    (job.job_id, due, event.id, raw_jsonb(event.to_bytes())),
                )
                fired += ins.rowcount
                await conn.execute("UPDATE jobs SET next_due = %s WHERE job_id = %s", (nxt, job.job_id))
        return fired

    async def unpublished(self, limit: int = 500) -> list[Firing]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT job_id, due_at, event FROM firings WHERE NOT published ORDER BY created_at LIMIT %s", (limit,)
            )
            return [Firing(r[0], r[1], parse_event(r[2])) for r in await cur.fetchall()]

    async def mark_published(self, firings: Sequence[Firing]) -> None:
        async with self._pool.connection() as conn:
            for f in firings:
                await conn.execute(
                    "UPDATE firings SET published = true WHERE job_id = %s AND due_at = %s", (f.job_id, f.due_at)
                )

    async def list_jobs(self, where: JobFilter = JobFilter()) -> list[JobView]:
        conds, params = [], []
        for column, value in (("tenant", where.tenant), ("channel", where.channel), ("chat_id", where.chat)):
            if value is not None:
                conds.append(f"{column} = %s")
                params.append(value)
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {SPEC}, next_due, paused_at, cancelled_at, removed_at, requested_by, updated_at FROM jobs "
                + (f"WHERE {' AND '.join(conds)} " if conds else "") + "ORDER BY job_id", params)
            return [_view(r) for r in await cur.fetchall()]


def _view(row: dict[str, Any]) -> JobView:
    spec = JobSpec(**{k: row[k] for k in SPEC.split(", ")})
    state = state_of(cancelled=row["cancelled_at"] is not None, removed=row["removed_at"] is not None,
                     paused=row["paused_at"] is not None, next_due=row["next_due"])
    return JobView(spec=spec, state=state, next_due=row["next_due"], paused_at=row["paused_at"],
                   cancelled_at=row["cancelled_at"], requested_by=row["requested_by"], updated_at=row["updated_at"])
