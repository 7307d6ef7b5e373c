"""Scheduler's work: apply job commands, fire due jobs, publish firings."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from agentbus.bus import PermanentError, Producer
from agentbus.config import Job, PlatformConfig
from agentbus.events import Event
from agentbus.services.scheduler.store import JobStore

log = structlog.get_logger("agentbus.scheduler")


def job_row(job: Job, config: PlatformConfig, source: str = "yaml") -> dict[str, object]:
    channel = config.channel(job.channel)
    if channel is None:
        raise PermanentError(f"unknown channel {job.channel!r}")
    kind, expr = (
        ("cron", job.cron) if job.cron else ("every", str(job.every_s)) if job.every_s else ("at", job.at)
    )
    return {
        "job_id": job.id, "source": source, "kind": kind, "expr": expr, "timezone": job.timezone,
        "tenant": channel.tenant, "agent": job.agent or channel.agent, "channel": channel.id,
        "chat_id": job.chat, "chat_type": job.chat_type, "prompt": job.prompt, "reply_route": job.reply_route,
    }


@dataclass
class Scheduler:
    config: PlatformConfig
    store: JobStore
    producer: Producer
    tick_s: float = 1.0

    async def sync_yaml_jobs(self) -> None:
        now = datetime.now(UTC)
        for job in self.config.jobs:
            await self.store.upsert(job_row(job, self.config), now)
        await self.store.disable_missing_yaml([j.id for j in self.config.jobs])
        log.info("jobs_synced", count=len(self.config.jobs))

    async def apply_command(self, event: Event) -> Sequence[Event]:
        """job.requested: create or delete a job (idempotent)."""
        cmd = event.data
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
            await self.store.upsert(
                {
                    "job_id": cmd.job_id, "source": "api", "kind": cmd.schedule.kind, "expr": cmd.schedule.expr,
                    "timezone": cmd.schedule.timezone, "tenant": channel.tenant, "agent": cmd.agent or channel.agent,
                    "channel": channel.id, "chat_id": cmd.chat.id, "chat_type": cmd.chat.type,
                    "prompt": cmd.prompt, "reply_route": cmd.reply_route,
                },
                datetime.now(UTC),
            )
        await self.store.record_command(event)
        log.info("job_command_applied", job_id=cmd.job_id, action=cmd.action)
        return []

    async def tick(self) -> int:
        fired = await self.store.claim_due(datetime.now(UTC))
        pending = await self.store.unpublished()
        if pending:
            await self.producer.publish([e for _, _, e in pending])
            await self.store.mark_published([(j, d) for j, d, _ in pending])
            for job_id, due, _ in pending:
                log.info("job_triggered", job_id=job_id, due_at=due.isoformat())
        return fired

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as exc:  # database or broker away: try again next tick, never skip a firing
                log.warning("scheduler_tick_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            await asyncio.sleep(self.tick_s)
