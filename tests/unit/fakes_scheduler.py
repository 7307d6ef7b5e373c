"""In-memory fakes of the scheduler's ports: they record what happened so tests assert on state.

The fake job store decides commands with the same pure rule as the PostgreSQL store (``commands.decide``)
and computes due times with the same functions, so the handler's tests exercise the real semantics."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from agentbus.events import Event, JobRequested
from agentbus.services.scheduler.commands import Current, decide, state_of
from agentbus.services.scheduler.ports import (
    REFUSED,
    CommandOutcome,
    Firing,
    JobChange,
    JobFilter,
    JobSpec,
    JobState,
    JobView,
)
from agentbus.services.scheduler.schedule import firing_event, first_due, next_due


@dataclass
class Row:
    spec: JobSpec
    next_due: datetime | None
    updated_at: datetime
    paused_at: datetime | None = None
    cancelled_at: datetime | None = None
    removed_at: datetime | None = None
    last_command_at: datetime | None = None
    requested_by: str | None = None

    @property
    def enabled(self) -> bool:
        return (self.paused_at is None and self.cancelled_at is None and self.removed_at is None
                and self.next_due is not None)

    @property
    def state(self) -> JobState:
        return state_of(cancelled=self.cancelled_at is not None, removed=self.removed_at is not None,
                        paused=self.paused_at is not None, next_due=self.next_due)


@dataclass
class FakeJobStore:
    rows: dict[str, Row] = field(default_factory=dict)
    firings: dict[tuple[str, datetime], Firing] = field(default_factory=dict)
    published: set[tuple[str, datetime]] = field(default_factory=set)
    commands: list[uuid.UUID] = field(default_factory=list)

    def _store(self, job: JobSpec, now: datetime, by: str | None, at: datetime | None) -> None:
        old = self.rows.get(job.job_id)
        if old is not None and old.cancelled_at is not None:
            return
        same = old is not None and (old.spec.kind, old.spec.expr, old.spec.timezone) == (job.kind, job.expr,
                                                                                         job.timezone)
        due = old.next_due if old is not None and same and old.removed_at is None else first_due(
            job.kind, job.expr, job.timezone, now)
        if old is None:
            self.rows[job.job_id] = Row(job, due, now, requested_by=by, last_command_at=at)
            return
        self.rows[job.job_id] = replace(old, spec=job, next_due=due, removed_at=None, updated_at=now,
                                        requested_by=by or old.requested_by, last_command_at=at or old.last_command_at)

    async def sync_yaml(self, jobs: Sequence[JobSpec], now: datetime) -> list[str]:
        for job in jobs:
            self._store(job, now, None, None)
        keep = {j.job_id for j in jobs}
        for job_id, row in self.rows.items():
            if row.spec.source == "yaml" and job_id not in keep and row.removed_at is None:
                row.removed_at = now
        return sorted(j for j in keep if self.rows[j].cancelled_at is not None)

    async def apply_command(self, event: JobRequested, change: JobChange, now: datetime) -> CommandOutcome:
        if event.id in self.commands:
            return "duplicate"
        row = self.rows.get(change.job_id)
        current = None if row is None else Current(row.spec.tenant, row.spec.source, row.cancelled_at is not None,
                                                   row.last_command_at)
        outcome = decide(current, change)
        if outcome in REFUSED:
            return outcome
        if outcome == "applied":
            if change.spec is not None:
                self._store(change.spec, now, change.requested_by, change.issued_at)
            else:
                assert row is not None
                if change.action == "pause":
                    row.paused_at = row.paused_at or change.issued_at
                elif change.action == "resume" and row.paused_at is not None:
                    row.paused_at = None
                    row.next_due = next_due(row.spec.kind, row.spec.expr, row.spec.timezone, now)
                elif change.action == "cancel":
                    row.cancelled_at, row.next_due = change.issued_at, None
                row.last_command_at, row.requested_by = change.issued_at, change.requested_by
        self.commands.append(event.id)
        return outcome

    async def claim_due(self, now: datetime, limit: int = 100) -> int:
        fired = 0
        due_jobs = sorted((r.next_due, j) for j, r in self.rows.items()
                          if r.enabled and r.next_due is not None and r.next_due <= now)
        for due, job_id in due_jobs[:limit]:
            row = self.rows[job_id]
            if (job_id, due) not in self.firings:
                self.firings[(job_id, due)] = Firing(job_id, due, firing_event(row.spec, due, now))
                fired += 1
            row.next_due = next_due(row.spec.kind, row.spec.expr, row.spec.timezone, max(due, now))
        return fired

    async def unpublished(self, limit: int = 500) -> list[Firing]:
        return [f for k, f in self.firings.items() if k not in self.published][:limit]

    async def mark_published(self, firings: Sequence[Firing]) -> None:
        self.published |= {(f.job_id, f.due_at) for f in firings}

    async def list_jobs(self, where: JobFilter = JobFilter()) -> list[JobView]:
        return [
            JobView(spec=r.spec, state=r.state, next_due=r.next_due, paused_at=r.paused_at, cancelled_at=r.cancelled_at,
                    requested_by=r.requested_by, updated_at=r.updated_at)
            for _, r in sorted(self.rows.items())
            if (where.tenant is None or r.spec.tenant == where.tenant)
            and (where.channel is None or r.spec.channel == where.channel)
            and (where.chat is None or r.spec.chat_id == where.chat)
        ]


@dataclass
class FakePublisher:
    published: list[Event] = field(default_factory=list)

    async def publish(self, events: Sequence[Event]) -> None:
        self.published.extend(events)
