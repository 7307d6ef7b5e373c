"""In-memory fakes of ingress's ports: they record what happened so tests assert on state."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from agentbus.events import Event
from agentbus.services.ingress.ports import DedupeUnavailable


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
