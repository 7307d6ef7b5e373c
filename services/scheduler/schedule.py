"""When is a job next due (cron in the job's time zone, one instant, or a fixed period), and what does a
firing publish? Pure functions: the job store uses them inside its transaction, and so do the tests' fakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from agentbus.events import Chat, JobTriggered, JobTriggeredData
from agentbus.ids import conversation_key, firing_id
from agentbus.services.scheduler.ports import JobSpec


def next_due(kind: str, expr: str, tz: str, after: datetime) -> datetime | None:
    """The first due time strictly after ``after`` (UTC-aware), or None when the job is finished."""
    if kind == "cron":
        local = after.astimezone(ZoneInfo(tz))
        nxt = croniter(expr, local).get_next(datetime)
        return nxt.astimezone(UTC)
    if kind == "at":
        at = datetime.fromisoformat(expr)
        if at.tzinfo is None:
            at = at.replace(tzinfo=ZoneInfo(tz))
        at = at.astimezone(UTC)
        return at if at > after else None
    if kind == "every":
        period = timedelta(seconds=float(expr))
        return after + period
    raise ValueError(f"unknown schedule kind {kind!r}")


def first_due(kind: str, expr: str, tz: str, now: datetime) -> datetime | None:
    if kind == "at":
        at = datetime.fromisoformat(expr)
        if at.tzinfo is None:
            at = at.replace(tzinfo=ZoneInfo(tz))
        return at.astimezone(UTC)
    if kind == "every":
        return now + timedelta(seconds=float(expr))
    return next_due(kind, expr, tz, now)


def firing_event(job: JobSpec, due: datetime, now: datetime) -> JobTriggered:
    """The event of one firing; its id (and correlation id) is the firing's, so a re-publish is a repeat."""
    event_id = firing_id(job.job_id, due)
    return JobTriggered(
        id=event_id,
        type=JobTriggered.TYPE,
        version=JobTriggered.VERSION,
        source="scheduler",
        occurred_at=now,
        tenant=job.tenant,
        conversation=conversation_key(job.tenant, job.channel, job.chat_id),
        correlation_id=event_id,
        data=JobTriggeredData(
            job_id=job.job_id, due_at=due, agent=job.agent, channel=job.channel,
            chat=Chat(id=job.chat_id, type=job.chat_type), prompt=job.prompt, reply_route=job.reply_route,
        ),
    )
