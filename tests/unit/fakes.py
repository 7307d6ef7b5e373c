"""In-memory fakes of the handlers' ports: they record what happened so tests assert on state."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from agentbus.events import Event, Recall, Turn


@dataclass
class FakeTurnStore:
    turns: dict[str, list[tuple[uuid.UUID, Turn]]] = field(default_factory=dict)
    processed: dict[tuple[uuid.UUID, str], list[Event]] = field(default_factory=dict)

    async def already(self, event: Event) -> list[Event] | None:
        return self.processed.get((event.id, event.replay.run if event.replay else ""))

    async def remember(self, event: Event, turn: Turn | None, history_limit: int,
                       build: Callable[[list[Turn]], Sequence[Event]], before: datetime | None = None) -> list[Event]:
        key = (event.id, event.replay.run if event.replay else "")
        if key in self.processed:
            return self.processed[key]
        conv = self.turns.setdefault(event.conversation, [])
        history = [t for (eid, t) in conv if eid != event.id][-history_limit:] if history_limit else []
        if turn is not None and all(eid != event.id for eid, _ in conv):
            conv.append((event.id, turn))
        out = list(build(history))
        self.processed[key] = out
        return out


@dataclass
class FakeEmbedder:
    calls: list[tuple[tuple[str, ...], str]] = field(default_factory=list)

    async def embed(self, texts: Sequence[str], kind: str) -> list[list[float]]:
        self.calls.append((tuple(texts), kind))
        return [[float(len(t)), 1.0] for t in texts]


@dataclass
class FakeVectors:
    points: dict[uuid.UUID, dict[str, object]] = field(default_factory=dict)

    async def search(self, vector: list[float], tenant: str, limit: int, exclude: uuid.UUID | None) -> list[Recall]:
        hits = [p for pid, p in self.points.items() if p["tenant"] == tenant and pid != exclude]
        return [Recall(text=str(p["text"]), score=0.9, role=p["role"]) for p in hits[:limit]]  # type: ignore[arg-type]

    async def upsert(self, point_id: uuid.UUID, vector: list[float], tenant: str, conversation: str, role: str,
                     text: str, at: datetime) -> None:
        self.points[point_id] = {"tenant": tenant, "conversation": conversation, "role": role, "text": text}
