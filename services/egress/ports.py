"""What egress's handler needs from outside, so it can be tested with fakes and wired in bootstrap.

The push happens before its outcome is recorded, so the at-most-once guarantee rests on the ledger's claim;
the handler sees only these calls, never SQL. Channel adapters classify each platform answer into the
three outcomes below (``Pushed``, ``Retryable``, ``Permanent``), so retries, backoff, rate limits and the
ledger are egress's alone and every channel gets the same guarantees. The adapters depend on this module,
not the other way round.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from agentbus.events import Event, ReplyGenerated, ReplyGeneratedData

Status = Literal["delivered", "failed", "suppressed"]  # as delivery.completed reports it


class Retryable(Exception):
    """Not delivered this time. ``ambiguous``: the platform may have received it (a read timeout)."""

    def __init__(
        self, reason: str, http_status: int | None = None, retry_after: float | None = None, ambiguous: bool = False
    ) -> None:
        super().__init__(reason)
        self.http_status = http_status
        self.retry_after = retry_after
        self.ambiguous = ambiguous


class Permanent(Exception):
    """Not delivered, and repeating the same push cannot change that (a documented permanent error)."""

    def __init__(self, reason: str, http_status: int | None = None) -> None:
        super().__init__(reason)
        self.http_status = http_status


@dataclass(frozen=True)
class Pushed:
    http_status: int | None = None
    platform_message_id: str | None = None


@dataclass(frozen=True)
class Claim:
    """The right to push a reply. ``ambiguous``: an earlier push was interrupted and may have arrived.

    ``previous_attempts`` are the pushes earlier rounds recorded (a round that ran out of attempts
    releases the reply with its count), so the outcome can report every attempt, as the ledger counts them.
    """

    state: Literal["claimed", "ambiguous"]
    previous_attempts: int = 0


@dataclass(frozen=True)
class Outcome:
    """How one round of handling a reply ended; ``attempts`` are this round's pushes only."""

    status: Status
    attempts: int = 0
    http_status: int | None = None
    error: str | None = None
    platform_message_id: str | None = None


class DeliveryLedger(Protocol):
    async def claim(self, event: ReplyGenerated, target: str) -> Claim | list[Event]:
        """A ``Claim``, or the outputs already recorded for this reply (handled before: nothing to do)."""
        ...

    async def release(self, reply_id: uuid.UUID, attempts: int, error: str, http_status: int | None) -> None:
        """Known not delivered after ``attempts`` more pushes: a later round may claim it again."""
        ...

    async def finish(
        self, event: ReplyGenerated, target: str, outcome: Outcome, outputs: Sequence[Event]
    ) -> list[Event]:
        """Record the outcome (its attempts added to those recorded) with the outputs, atomically."""
        ...

    async def record_only(self, event: ReplyGenerated, outputs: Sequence[Event]) -> list[Event]:
        """The processed record alone, for a run that must leave the delivery rows alone (a replay)."""
        ...


class Outbound(Protocol):
    """One configured channel's push to its platform; one call of ``push`` is one attempt."""

    def target(self, reply: ReplyGeneratedData) -> str:
        """The rate-limit key (a chat, a robot, a webhook)."""
        ...

    def is_idempotent(self, reply: ReplyGeneratedData) -> bool:
        """Whether the platform de-duplicates a repeated push of this reply, so an ambiguous one may be repeated."""
        ...

    def rate_for(self, reply: ReplyGeneratedData) -> int | None:
        """Pushes per minute allowed to this reply's target, None for no limit."""
        ...

    async def push(self, reply: ReplyGeneratedData, reply_id: uuid.UUID) -> Pushed:
        """Raise ``Retryable`` or ``Permanent`` when not delivered."""
        ...


class RateLimiter(Protocol):
    async def acquire(self, target: str, per_minute: int | None) -> None:
        """Wait until one more push to ``target`` fits its rate."""
        ...


class FinalEdit(Protocol):
    async def final(self, adapter: Outbound, reply: ReplyGeneratedData, reply_id: uuid.UUID) -> Pushed | None:
        """A streamed reply edited into the message its progress was shown in (None: push it as usual)."""
        ...
