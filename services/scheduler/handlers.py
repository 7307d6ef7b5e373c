"""Scheduler's work: apply job commands, sync agentbus.yaml's jobs, fire due jobs, publish firings."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from agentbus.bus import PermanentError
from agentbus.config import Job, PlatformConfig
from agentbus.events import Event, JobRequested
from agentbus.jobs import STORES_JOB, JobCommandError, check_command
from agentbus.replaying import effects_of
from agentbus.schedules import ScheduleKind
from agentbus.services.scheduler.ports import JobChange, JobSpec, JobStore, Publisher

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


def command_job(event: JobRequested, config: PlatformConfig) -> JobSpec:
    """The job a create/update command stores; refused unless its channel is one of the command's tenant."""
    cmd = event.data
    assert cmd.schedule is not None and cmd.chat is not None and cmd.prompt  # check_command() said so
    channel = config.channel(cmd.channel or "")
    if channel is None:
        raise PermanentError(f"channel: unknown channel {cmd.channel!r}")
    if channel.tenant != event.tenant:
        raise PermanentError("channel: a job may only post into a channel of its own tenant")
    agent = cmd.agent or channel.agent
    if config.agent(agent) is None:
        raise PermanentError(f"agent: unknown agent {agent!r}")
    return JobSpec(
        job_id=cmd.job_id, source="api", kind=cmd.schedule.kind, expr=cmd.schedule.expr,
        timezone=cmd.schedule.timezone, tenant=channel.tenant, agent=agent, channel=channel.id,
        chat_id=cmd.chat.id, chat_type=cmd.chat.type, prompt=cmd.prompt, reply_route=cmd.reply_route,
    )


@dataclass
class Scheduler:
    config: PlatformConfig
    store: JobStore
    producer: Publisher
    tick_s: float = 1.0

    async def sync_yaml_jobs(self) -> None:
        """Store agentbus.yaml's jobs; one cancelled by command stays cancelled (rename it to start anew)."""
        jobs = [yaml_job(job, self.config) for job in self.config.jobs]
        for job_id in await self.store.sync_yaml(jobs, datetime.now(UTC)):
            log.warning("yaml_job_stays_cancelled", job_id=job_id)
        log.info("jobs_synced", count=len(jobs))

    async def apply_command(self, event: JobRequested) -> Sequence[Event]:
        """job.requested: create, update, pause, resume or cancel a job, once per command, in the order the
        commands were issued. A command of a shadow run changes no job; a bad one is refused, changing nothing."""
        cmd = event.data
        if not effects_of(event).remember:
            log.info("job_command_not_applied", job_id=cmd.job_id, reason="replayed")
            return []
        try:
            check_command(cmd)
        except JobCommandError as err:
            raise PermanentError(str(err)) from None
        spec = command_job(event, self.config) if cmd.action in STORES_JOB else None
        change = JobChange(job_id=cmd.job_id, action=cmd.action, tenant=event.tenant, issued_at=event.occurred_at,
                           requested_by=cmd.requested_by, spec=spec)
        outcome = await self.store.apply_command(event, change, datetime.now(UTC))
        if outcome == "foreign":
            raise PermanentError(f"job_id: job {cmd.job_id!r} belongs to another tenant")
        if outcome == "yaml":
            raise PermanentError(f"job_id: job {cmd.job_id!r} is defined in agentbus.yaml; change it there")
        if outcome == "applied":
            log.info("job_command_applied", job_id=cmd.job_id, action=cmd.action, requested_by=cmd.requested_by)
        else:
            log.info("job_command_ignored", job_id=cmd.job_id, action=cmd.action, reason=outcome)
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
