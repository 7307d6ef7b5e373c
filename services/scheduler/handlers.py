"""Scheduler's work: apply job commands, fire due jobs, publish firings."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from agentbus.bus import PermanentError
from agentbus.config import Job, PlatformConfig
from agentbus.events import Event, JobRequested
from agentbus.replaying import effects_of
from agentbus.services.scheduler.ports import JobSpec, JobStore, Publisher, ScheduleKind

log = structlog.get_logger("agentbus.scheduler")


def _schedule(job: Job) -> tuple[ScheduleKind, str]:
    if job.cron is not None:
        return "cron", job.cron
    if job.every_s is not None:
        return "every", str(job.every_s)
    if job.at is not None:
        return "at", job.at
    raise PermanentError(f"job {job.id!r} has no schedule")  # the config's validator makes this unreachable


def yaml_job(job: Job, config: PlatformConfig) -> JobSpec:
    """A job of agentbus.yaml as stored: its channel decides the tenant and, unless given, the agent."""
    channel = config.channel(job.channel)
    if channel is None:
        raise PermanentError(f"unknown channel {job.channel!r}")
    kind, expr = _schedule(job)
    return JobSpec(
        job_id=job.id, source="yaml", kind=kind, expr=expr, timezone=job.timezone, tenant=channel.tenant,
        agent=job.agent or channel.agent, channel=channel.id, chat_id=job.chat, chat_type=job.chat_type,
        prompt=job.prompt, reply_route=job.reply_route,
    )


@dataclass
class Scheduler:
    config: PlatformConfig
    store: JobStore
    producer: Publisher
    tick_s: float = 1.0

    async def sync_yaml_jobs(self) -> None:
        now = datetime.now(UTC)
        for job in self.config.jobs:
            await self.store.upsert(yaml_job(job, self.config), now)
        await self.store.disable_missing_yaml([j.id for j in self.config.jobs])
        log.info("jobs_synced", count=len(self.config.jobs))

    async def apply_command(self, event: JobRequested) -> Sequence[Event]:
        """job.requested: create or delete a job (idempotent). A command of a shadow run changes no job."""
        cmd = event.data
        if not effects_of(event).remember:
            log.info("job_command_not_applied", job_id=cmd.job_id, reason="replayed")
            return []
        if cmd.action == "delete":
            await self.store.delete(cmd.job_id)
        else:
            if cmd.schedule is None or cmd.channel is None or cmd.chat is None or not cmd.prompt:
                raise PermanentError("create needs schedule, channel, chat and prompt")
            channel = self.config.channel(cmd.channel)
            if channel is None:
                raise PermanentError(f"unknown channel {cmd.channel!r}")
            if channel.tenant != event.tenant:
                raise PermanentError("a job may only post into a channel of its own tenant")
            job = JobSpec(
                job_id=cmd.job_id, source="api", kind=cmd.schedule.kind, expr=cmd.schedule.expr,
                timezone=cmd.schedule.timezone, tenant=channel.tenant, agent=cmd.agent or channel.agent,
                channel=channel.id, chat_id=cmd.chat.id, chat_type=cmd.chat.type, prompt=cmd.prompt,
                reply_route=cmd.reply_route,
            )
            await self.store.upsert(job, datetime.now(UTC))
        await self.store.record_command(event)
        log.info("job_command_applied", job_id=cmd.job_id, action=cmd.action)
        return []

    async def tick(self) -> int:
        fired = await self.store.claim_due(datetime.now(UTC))
        pending = await self.store.unpublished()
        if pending:
            await self.producer.publish([f.event for f in pending])
            await self.store.mark_published(pending)
            for f in pending:
                log.info("job_triggered", job_id=f.job_id, due_at=f.due_at.isoformat())
        return fired

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as exc:  # database or broker away: try again next tick, never skip a firing
                log.warning("scheduler_tick_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            await asyncio.sleep(self.tick_s)
