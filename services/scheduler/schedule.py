"""When is a job next due (cron in the job's time zone, one instant, or a fixed period), and what does a
firing publish? Pure functions: the job store uses them inside its transaction, and so do the tests' fakes.

Cron expressions are wall-clock times, iterated on the naive local clock and resolved to instants as
``agentbus.schedules`` says (the first of a repeated time, the end of a skipped gap). croniter's own
time-zone handling fires a daily 02:30 job twice when clocks go back (once at 02:30 summer time, again at
02:30 winter time); iterating the wall clock fires it once.
"""

from __future__ import annotations

from datetime import datetime

from croniter import croniter

from agentbus.events import Chat, JobTriggered, JobTriggeredData
from agentbus.ids import conversation_key, firing_id
from agentbus.schedules import parse_at, period, wall_to_utc, zone
from agentbus.services.scheduler.ports import JobSpec


def next_cron(expr: str, tz: str, after: datetime) -> datetime:
    """The first instant strictly after ``after`` at which the wall clock in ``tz`` matches ``expr``."""
    z = zone(tz)
    it = croniter(expr, after.astimezone(z).replace(tzinfo=None))
    for _ in range(10_000):  # more than one candidate only around a change of the clocks
        due = wall_to_utc(it.get_next(datetime), z)
        if due > after:
            return due
    raise ValueError(f"cron {expr!r} in {tz!r} has no due time after {after.isoformat()}")  # pragma: no cover


def next_due(kind: str, expr: str, tz: str, after: datetime) -> datetime | None:
    """The first due time strictly after ``after`` (UTC-aware), or None when the job is finished."""
    if kind == "cron":
        return next_cron(expr, tz, after)
    if kind == "at":
        at = parse_at(expr, tz)
        return at if at > after else None
    if kind == "every":
        return after + period(expr)
    raise ValueError(f"unknown schedule kind {kind!r}")


def first_due(kind: str, expr: str, tz: str, now: datetime) -> datetime | None:
    """The first due time of a new (or rescheduled) job: an ``at`` already past fires once, now."""
    if kind == "at":
        return parse_at(expr, tz)
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
