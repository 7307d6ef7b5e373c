"""In-memory fakes of ingress's ports: they record what happened so tests assert on state."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from agentbus.events import Event
from agentbus.services.ingress.ports import DedupeUnavailable, LeaseUnavailable


@dataclass
class FakeDedupe:
    rows: dict[tuple[str, str], uuid.UUID] = field(default_factory=dict)
    down: bool = False  # the database unreachable: every call raises DedupeUnavailable

    async def seen(self, channel: str, dedupe_id: str) -> bool:
        if self.down:
            raise DedupeUnavailable("connection refused")
        return (channel, dedupe_id) in self.rows

    async def record(self, channel: str, dedupe_id: str, event_id: uuid.UUID) -> None:
        if self.down:
            raise DedupeUnavailable("connection refused")
        self.rows.setdefault((channel, dedupe_id), event_id)


@dataclass
class FakePublisher:
    published: list[Event] = field(default_factory=list)

    async def publish(self, events: Sequence[Event]) -> None:
        self.published.extend(events)


@dataclass
class FakeLeases:
    """Leases on a clock the test moves (``now``): expiry, take-over and release as the PostgreSQL table has them."""

    now: float = 0.0
    rows: dict[str, tuple[str, float]] = field(default_factory=dict)  # channel -> (holder, expires at)
    down: bool = False
    takes: list[tuple[str, str]] = field(default_factory=list)  # (channel, holder) of every change of holder

    async def acquire(self, channel: str, holder: str, ttl_s: float) -> str:
        if self.down:
            raise LeaseUnavailable("connection refused")
        current = self.rows.get(channel)
        if current is None or current[0] == holder or current[1] < self.now:
            if current is None or current[0] != holder:
                self.takes.append((channel, holder))
            self.rows[channel] = (holder, self.now + ttl_s)
            return holder
        return current[0]

    async def release(self, channel: str, holder: str) -> None:
        if self.down:
            raise LeaseUnavailable("connection refused")
        current = self.rows.get(channel)
        if current is not None and current[0] == holder:
            self.rows[channel] = (holder, self.now - 1)
