"""In-memory fakes of the scheduler's ports: they record what happened so tests assert on state."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from agentbus.events import Event, JobRequested
from agentbus.services.scheduler.ports import Firing, JobSpec
from agentbus.services.scheduler.schedule import firing_event, first_due, next_due


@dataclass
class FakeJobStore:
    jobs: dict[str, JobSpec] = field(default_factory=dict)
    enabled: dict[str, bool] = field(default_factory=dict)
    due: dict[str, datetime | None] = field(default_factory=dict)
    firings: dict[tuple[str, datetime], Firing] = field(default_factory=dict)
    published: set[tuple[str, datetime]] = field(default_factory=set)
    commands: list[uuid.UUID] = field(default_factory=list)

    async def upsert(self, job: JobSpec, now: datetime) -> None:
        old = self.jobs.get(job.job_id)
        same = old is not None and (old.kind, old.expr, old.timezone) == (job.kind, job.expr, job.timezone)
        if not (same and self.enabled[job.job_id] and self.due[job.job_id] is not None):
            self.due[job.job_id] = first_due(job.kind, job.expr, job.timezone, now)
        self.jobs[job.job_id] = job
        self.enabled[job.job_id] = True

    async def disable_missing_yaml(self, keep: Sequence[str]) -> None:
        for job_id, job in self.jobs.items():
            if job.source == "yaml" and job_id not in keep:
                self.enabled[job_id] = False

    async def delete(self, job_id: str) -> None:
        if job_id in self.enabled:
            self.enabled[job_id] = False

    async def claim_due(self, now: datetime, limit: int = 100) -> int:
        fired = 0
        due_jobs = sorted((d, j) for j, d in self.due.items() if self.enabled[j] and d is not None and d <= now)
        for due, job_id in due_jobs[:limit]:
            job = self.jobs[job_id]
            if (job_id, due) not in self.firings:
                self.firings[(job_id, due)] = Firing(job_id, due, firing_event(job, due, now))
                fired += 1
            nxt = next_due(job.kind, job.expr, job.timezone, max(due, now))
            self.due[job_id], self.enabled[job_id] = nxt, nxt is not None
        return fired

    async def unpublished(self, limit: int = 500) -> list[Firing]:
        return [f for k, f in self.firings.items() if k not in self.published][:limit]

    async def mark_published(self, firings: Sequence[Firing]) -> None:
        self.published |= {(f.job_id, f.due_at) for f in firings}

    async def record_command(self, event: JobRequested) -> bool:
        if event.id in self.commands:
            return False
        self.commands.append(event.id)
        return True


@dataclass
class FakePublisher:
    published: list[Event] = field(default_factory=list)

    async def publish(self, events: Sequence[Event]) -> None:
        self.published.extend(events)
