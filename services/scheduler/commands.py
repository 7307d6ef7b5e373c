"""What a job command may do to the job it names, decided in one place for the PostgreSQL store and the
tests' fake (pure: no I/O).

Commands apply in the order they were issued, and a cancel is final: the row stays as a tombstone, so a
dead letter of an older "create" redriven weeks later, or agentbus.yaml synced again on a restart,
never brings a cancelled job back. A job only ever answers to commands of its own tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agentbus.jobs import STORES_JOB
from agentbus.services.scheduler.ports import CommandOutcome, JobChange, JobState


@dataclass(frozen=True)
class Current:
    """What the store holds of the job a command names."""

    tenant: str
    source: str
    cancelled: bool
    last_command_at: datetime | None


def decide(current: Current | None, change: JobChange) -> CommandOutcome:
    if current is None:
        return "applied" if change.action in STORES_JOB else "unknown"
    if current.tenant != change.tenant:
        return "foreign"
    if current.cancelled:
        return "cancelled"
    if current.last_command_at is not None and change.issued_at < current.last_command_at:
        return "stale"
    if change.action in STORES_JOB and current.source == "yaml":
        return "yaml"
    return "applied"


def state_of(*, cancelled: bool, removed: bool, paused: bool, next_due: datetime | None) -> JobState:
    if cancelled:
        return "cancelled"
    if removed:
        return "removed"
    if paused:
        return "paused"
    return "finished" if next_due is None else "active"
