"""What the scheduler's handler needs from outside, so it can be tested with fakes and wired in bootstrap.

The job store is the only place firings are claimed, which is what makes a due time fire once across
replicas, and the only place commands are applied: a command is checked against the processed-event
record and the job's last applied command, applied and recorded in one transaction, so a redelivered or
an old one changes nothing. The handler never sees SQL, only these calls. The publisher is the kernel's producer (its
``publish`` waits for the broker's acks), named here so the handler does not depend on Kafka.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from agentbus.events import Event, JobAction, JobRequested
from agentbus.schedules import ScheduleKind

JobState = Literal["active", "paused", "cancelled", "finished", "removed"]
# what the store did with a command: applied; already applied (a redelivery); older than the last command
# applied to its job; for a cancelled job; for no such job (pause/resume/cancel) — each of these is recorded
# as processed. Refused, nothing recorded: another tenant's job, or create/update of a job of agentbus.yaml.
CommandOutcome = Literal["applied", "duplicate", "stale", "cancelled", "unknown", "foreign", "yaml"]
REFUSED: tuple[CommandOutcome, ...] = ("foreign", "yaml")


@dataclass(frozen=True)
class JobSpec:
    """One job as stored: from agentbus.yaml (``source="yaml"``) or from a job.requested command (``"api"``).

    Both origins go through the same upsert, so a job created by either fires the same way."""

    job_id: str
    source: Literal["yaml", "api"]
    kind: ScheduleKind
    expr: str  # cron expression, ISO-8601 instant, or seconds between runs
    timezone: str
    tenant: str
    agent: str
    channel: str
    chat_id: str
    chat_type: Literal["direct", "group"]
    prompt: str
    reply_route: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobChange:
    """One command as the store applies it: the job it stores (create/update) or the job it names."""

    job_id: str
    action: JobAction
    tenant: str
    issued_at: datetime  # the command's envelope time: commands apply in the order they were issued
    requested_by: str
    spec: JobSpec | None = None


@dataclass(frozen=True)
class JobFilter:
    tenant: str | None = None
    channel: str | None = None
    chat: str | None = None


@dataclass(frozen=True)
class JobView:
    """A job as the admin endpoint shows it."""

    spec: JobSpec
    state: JobState
    next_due: datetime | None
    paused_at: datetime | None
    cancelled_at: datetime | None
    requested_by: str | None
    updated_at: datetime


@dataclass(frozen=True)
class Firing:
    """A claimed (job, due time) whose event is waiting in the outbox to be published."""

    job_id: str
    due_at: datetime
    event: Event


class JobStore(Protocol):
    async def sync_yaml(self, jobs: Sequence[JobSpec], now: datetime) -> list[str]:
        """Store agentbus.yaml's jobs (never bringing back one cancelled by command, keeping a pause) and
        mark those no longer in it removed; returns the ids of configured jobs left cancelled."""
        ...

    async def apply_command(self, event: JobRequested, change: JobChange, now: datetime) -> CommandOutcome: ...

    async def claim_due(self, now: datetime, limit: int = 100) -> int:
        """Turn due jobs into firings and advance them; returns how many fired."""
        ...

    async def unpublished(self, limit: int = 500) -> list[Firing]: ...

    async def mark_published(self, firings: Sequence[Firing]) -> None: ...

    async def list_jobs(self, where: JobFilter = JobFilter()) -> list[JobView]: ...


class Publisher(Protocol):
    async def publish(self, events: Sequence[Event]) -> None: ...
