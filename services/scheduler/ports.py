"""What the scheduler's handler needs from outside, so it can be tested with fakes and wired in bootstrap.

The job store is the only place firings are claimed, which is what makes a due time fire once across
replicas; the handler never sees SQL, only these calls. The publisher is the kernel's producer (its
``publish`` waits for the broker's acks), named here so the handler does not depend on Kafka.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from agentbus.events import Event, JobRequested

ScheduleKind = Literal["cron", "at", "every"]


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
class Firing:
    """A claimed (job, due time) whose event is waiting in the outbox to be published."""

    job_id: str
    due_at: datetime
    event: Event


class JobStore(Protocol):
    async def upsert(self, job: JobSpec, now: datetime) -> None: ...

    async def disable_missing_yaml(self, keep: Sequence[str]) -> None: ...

    async def delete(self, job_id: str) -> None: ...

    async def claim_due(self, now: datetime, limit: int = 100) -> int:
        """Turn due jobs into firings and advance them; returns how many fired."""
        ...

    async def unpublished(self, limit: int = 500) -> list[Firing]: ...

    async def mark_published(self, firings: Sequence[Firing]) -> None: ...

    async def record_command(self, event: JobRequested) -> bool:
        """False when this command event was already applied."""
        ...


class Publisher(Protocol):
    async def publish(self, events: Sequence[Event]) -> None: ...
