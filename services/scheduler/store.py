"""Jobs and firings in PostgreSQL (schema ``scheduler``).

Due jobs are claimed with ``FOR UPDATE SKIP LOCKED`` so replicas share the work; the firing row for a
(job, due time) is inserted once, with the event to publish, in the same transaction that advances the job.
Publishing happens after commit from the firings table (an outbox), and the event id is derived from the
job and due time, so a firing re-published after a crash is ignored downstream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from agentbus.db import processed_outputs, raw_jsonb, record_processed
from agentbus.events import JobRequested, parse_event
from agentbus.services.scheduler.ports import Firing, JobSpec
from agentbus.services.scheduler.schedule import firing_event, first_due, next_due


class PgJobStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def upsert(self, job: JobSpec, now: datetime) -> None:
        due = first_due(job.kind, job.expr, job.timezone, now)
        async with self._pool.connection() as conn:
            await conn.execute(
                """
                INSERT INTO jobs (job_id, source, kind, expr, timezone, tenant, agent, channel, chat_id, chat_type,
                                  prompt, reply_route, enabled, next_due, updated_at)
                VALUES (%(job_id)s, %(source)s, %(kind)s, %(expr)s, %(timezone)s, %(tenant)s, %(agent)s,
                        %(channel)s, %(chat_id)s, %(chat_type)s, %(prompt)s, %(reply_route)s, true, %(due)s, now())
                ON CONFLICT (job_id) DO UPDATE SET
                    source = EXCLUDED.source, tenant = EXCLUDED.tenant, agent = EXCLUDED.agent,
                    channel = EXCLUDED.channel, chat_id = EXCLUDED.chat_id, chat_type = EXCLUDED.chat_type,
                    prompt = EXCLUDED.prompt, reply_route = EXCLUDED.reply_route, enabled = true,
                    next_due = CASE WHEN (jobs.kind, jobs.expr, jobs.timezone)
                                    = (EXCLUDED.kind, EXCLUDED.expr, EXCLUDED.timezone) AND jobs.enabled
                                    AND jobs.next_due IS NOT NULL
                               THEN jobs.next_due ELSE EXCLUDED.next_due END,
                    kind = EXCLUDED.kind, expr = EXCLUDED.expr, timezone = EXCLUDED.timezone, updated_at = now()
                """,
                {**asdict(job), "reply_route": Jsonb(job.reply_route or {}), "due": due},
            )

    async def disable_missing_yaml(self, keep: Sequence[str]) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE jobs SET enabled = false WHERE source = 'yaml' AND NOT (job_id = ANY(%s))", (list(keep),)
            )

    async def delete(self, job_id: str) -> None:
        async with self._pool.connection() as conn:
            await conn.execute("UPDATE jobs SET enabled = false, updated_at = now() WHERE job_id = %s", (job_id,))

    async def claim_due(self, now: datetime, limit: int = 100) -> int:
        """Turn due jobs into firings and advance them; returns how many fired."""
        fired = 0
        async with self._pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT job_id, source, kind, expr, timezone, tenant, agent, channel, chat_id, chat_type, prompt, "
                "reply_route, next_due FROM jobs WHERE enabled AND next_due <= %s "
                "ORDER BY next_due LIMIT %s FOR UPDATE SKIP LOCKED",
                (now, limit),
            )
            for row in await cur.fetchall():
                due = row.pop("next_due")
                job = JobSpec(**row)
                event = firing_event(job, due, now)
                ins = await conn.execute(
                    "INSERT INTO firings (job_id, due_at, event_id, event) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    (job.job_id, due, event.id, raw_jsonb(event.to_bytes())),
                )
                fired += ins.rowcount
                # missed runs while nobody was up are coalesced into this one firing
                nxt = next_due(job.kind, job.expr, job.timezone, max(due, now))
                await conn.execute(
                    "UPDATE jobs SET next_due = %s, enabled = %s WHERE job_id = %s",
                    (nxt, nxt is not None, job.job_id),
                )
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

    async def record_command(self, event: JobRequested) -> bool:
        """False when this command event was already applied."""
        async with self._pool.connection() as conn, conn.transaction():
            if await processed_outputs(conn, event) is not None:
                return False
            await record_processed(conn, event, [])
            return True

    async def list_jobs(self) -> list[dict[str, Any]]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT job_id, source, kind, expr, timezone, channel, chat_id, enabled, next_due FROM jobs "
                "ORDER BY job_id"
            )
            cols = [c.name for c in cur.description or ()]
            return [dict(zip(cols, r, strict=True)) for r in await cur.fetchall()]
