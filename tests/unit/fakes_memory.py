"""In-memory fakes of memory's ports (``agentbus.services.memory.ports``): they record what happened so
tests assert on state, and ``test_ports_memory`` checks them against the ports so they cannot drift."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from agentbus.events import Event, Recall, Turn


@dataclass
class FakeTurnStore:
    turns: dict[str, list[tuple[uuid.UUID, Turn]]] = field(default_factory=dict)  # by conversation, in order
    processed: dict[tuple[uuid.UUID, str], list[Event]] = field(default_factory=dict)  # (event, replay run)

    async def history(
        self, conversation: str, limit: int = 50, before: datetime | None = None, exclude: uuid.UUID | None = None
    ) -> list[Turn]:
        if limit <= 0:
            return []
        seen = [t for eid, t in self.turns.get(conversation, [])
                if eid != exclude and (before is None or t.at <= before)]
        return seen[-limit:]

    async def remember(self, event: Event, turn: Turn | None, outputs: Sequence[Event]) -> list[Event]:
        key = (event.id, event.replay.run if event.replay is not None else "")
        if key in self.processed:  # the first record wins, and its turn is written already
            return self.processed[key]
        if turn is not None:
            self.turns.setdefault(event.conversation, []).append((event.id, turn))
        self.processed[key] = list(outputs)
        return list(outputs)


@dataclass
class FakeEmbedder:
    calls: list[tuple[tuple[str, ...], str]] = field(default_factory=list)

    async def embed(self, texts: Sequence[str], kind: str) -> list[list[float]]:
        self.calls.append((tuple(texts), kind))
        return [[float(len(t)), 1.0] for t in texts]


@dataclass(frozen=True)
class Point:
    tenant: str
    conversation: str
    role: str
    text: str


@dataclass
class FakeVectors:
    points: dict[uuid.UUID, Point] = field(default_factory=dict)

    async def search(self, vector: list[float], tenant: str, limit: int, exclude: uuid.UUID | None) -> list[Recall]:
        hits = [p for pid, p in self.points.items() if p.tenant == tenant and pid != exclude]
        return [Recall(text=p.text, score=0.9, role=p.role) for p in hits[:limit]]

    async def upsert(self, point_id: uuid.UUID, vector: list[float], tenant: str, conversation: str, role: str,
                     text: str, at: datetime) -> None:
        self.points[point_id] = Point(tenant, conversation, role, text)
