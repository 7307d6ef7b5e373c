"""In-memory fakes of memory's ports (``agentbus.services.memory.ports``): they record what happened so
tests assert on state, and ``test_ports_memory`` checks them against the ports so they cannot drift."""

from __future__ import annotations

import math
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from agentbus.events import Event, KnowledgeRequested, MemoryRequested, Recall, Turn
from agentbus.services.memory.ports import (
    Deferred,
    Kind,
    KnowledgeDocument,
    KnowledgeRow,
    Origin,
    Scope,
    knowledge_recall,
)
from agentbus.services.memory.vectorring import unit


@dataclass
class FakeTurnStore:
    turns: dict[str, list[tuple[uuid.UUID, Turn]]] = field(default_factory=dict)  # by conversation, in order
    processed: dict[tuple[uuid.UUID, str], list[Event]] = field(default_factory=dict)  # (event, replay run)

    async def history(
        self, conversation: str, limit: int = 50, before: datetime | None = None, exclude: uuid.UUID | None = None,
        since: datetime | None = None,
    ) -> list[Turn]:
        if limit <= 0:
            return []
        seen = [t for eid, t in self.turns.get(conversation, [])
                if eid != exclude and (before is None or t.at <= before) and (since is None or t.at >= since)]
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
    vector: tuple[float, ...] = ()
    kind: Kind = "turn"
    subject: str | None = None
    at: datetime | None = None
    origin: Origin = Origin()

    def within(self, scope: Scope) -> bool:
        return (self.tenant == scope.tenant
                and (scope.conversation is None or self.conversation == scope.conversation)
                and (scope.owner is None or self.origin.owner == scope.owner)
                and (not scope.group_only or self.origin.chat_type == "group"))


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    norm = math.hypot(*a) * math.hypot(*b)
    return sum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0


@dataclass
class FakeVectors:
    """Search answers every point of the scope with score 0.9 (handler tests check who sees what, not the
    ranking); forget compares for real, as the threshold is what its tests are about."""

    points: dict[uuid.UUID, Point] = field(default_factory=dict)
    forgotten: set[uuid.UUID] = field(default_factory=set)
    searches: list[tuple[Scope, frozenset[uuid.UUID]]] = field(default_factory=list)  # scope, ids left out

    async def search(self, vector: list[float], scope: Scope, limit: int,
                     exclude: Collection[uuid.UUID] = ()) -> list[Recall]:
        self.searches.append((scope, frozenset(exclude)))
        hits = [(pid, p) for pid, p in self.points.items() if p.within(scope) and pid not in exclude]
        return [Recall(text=p.text, score=0.9, role=p.role, kind=p.kind, at=p.at, conversation=p.conversation,
                       event_id=pid, sender=p.origin.sender, sender_name=p.origin.sender_name,
                       channel=p.origin.channel, chat=p.origin.chat, chat_name=p.origin.chat_name,
                       chat_type=p.origin.chat_type, owner=p.origin.owner) for pid, p in hits[:limit]]

    async def upsert(self, point_id: uuid.UUID, vector: list[float], scope: Scope, conversation: str, role: str,
                     text: str, at: datetime, kind: Kind = "turn", subject: str | None = None,
                     origin: Origin | None = None) -> None:
        if point_id not in self.forgotten:
            self.points[point_id] = Point(scope.tenant, conversation, role, text, tuple(vector), kind,
                                           subject, at, origin or Origin())

    async def forget(self, vector: list[float], scope: Scope, min_score: float) -> list[uuid.UUID]:
        gone = [pid for pid, p in self.points.items()
                if p.tenant == scope.tenant and cosine(p.vector, vector) >= min_score]
        for pid in gone:
            del self.points[pid]
        self.forgotten.update(gone)
        return gone

    async def erase(self, tenant: str, user: str) -> int:
        gone = [pid for pid, p in self.points.items() if p.tenant == tenant and user in (p.origin.owner, p.subject)]
        for pid in gone:
            del self.points[pid]
        self.forgotten.update(gone)
        return len(gone)

    def _recall(self, pid: uuid.UUID, p: Point) -> Recall:
        return Recall(text=p.text, score=0.0, role=p.role, kind=p.kind, at=p.at, conversation=p.conversation,
                      event_id=pid, sender=p.origin.sender, sender_name=p.origin.sender_name,
                      channel=p.origin.channel, chat=p.origin.chat, chat_name=p.origin.chat_name,
                      chat_type=p.origin.chat_type)

    async def memories(self, tenant: str, conversation: str, limit: int) -> list[Recall]:
        mine = [(pid, p) for pid, p in self.points.items() if p.tenant == tenant and p.conversation == conversation]
        return [self._recall(pid, p) for pid, p in reversed(mine)][:limit]

    async def find(self, tenant: str, ids: Collection[uuid.UUID]) -> list[Recall]:
        return [self._recall(pid, p) for pid, p in self.points.items() if pid in ids and p.tenant == tenant]

    async def delete(self, tenant: str, ids: Collection[uuid.UUID]) -> list[uuid.UUID]:
        gone = [pid for pid, p in self.points.items() if pid in ids and p.tenant == tenant]
        for pid in gone:
            del self.points[pid]
        self.forgotten.update(gone)
        return gone


@dataclass
class FakeCommandLog:
    applied_commands: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)  # command id → deleted ids

    async def applied(self, event: Event) -> bool:
        return event.id in self.applied_commands

    async def record(self, event: MemoryRequested, deleted: Sequence[uuid.UUID]) -> None:
        self.applied_commands.setdefault(event.id, list(deleted))


@dataclass
class FakeDeferredIndex:
    waiting: dict[uuid.UUID, Deferred] = field(default_factory=dict)
    released: list[uuid.UUID] = field(default_factory=list)

    async def defer(self, item: Deferred) -> None:
        self.waiting.setdefault(item.point_id, item)

    async def take(self, limit: int) -> list[Deferred]:
        return list(self.waiting.values())[:limit]

    async def done(self, ids: Sequence[uuid.UUID]) -> None:
        for i in ids:
            self.waiting.pop(i, None)

    async def release(self, ids: Sequence[uuid.UUID]) -> None:
        self.released.extend(ids)


@dataclass
class FakeKnowledge:
    """Chunks per tenant, searched exactly by cosine similarity."""

    rows: dict[str, dict[uuid.UUID, KnowledgeRow]] = field(default_factory=dict)
    writes: int = 0

    async def add(self, tenant: str, rows: Sequence[KnowledgeRow]) -> None:
        self.writes += 1
        for r in rows:
            self.rows.setdefault(tenant, {})[r.id] = r

    async def search(self, tenant: str, vector: list[float], limit: int) -> list[Recall]:
        q = unit(vector)
        scored = [(float(unit(r.vector) @ q), r) for r in self.rows.get(tenant, {}).values()]
        scored.sort(key=lambda x: -x[0])
        return [knowledge_recall(r.id, r.document, r.title, r.section, r.position, r.text, r.loaded_at, s)
                for s, r in scored[:limit]]

    async def remove(self, tenant: str, document: uuid.UUID) -> int:
        mine = self.rows.get(tenant, {})
        doomed = [i for i, r in mine.items() if r.document == document]
        for i in doomed:
            del mine[i]
        return len(doomed)


@dataclass
class FakeKnowledgeCatalogue:
    applied_ids: set[uuid.UUID] = field(default_factory=set)
    parts: dict[uuid.UUID, dict[int, int]] = field(default_factory=dict)
    gone: set[uuid.UUID] = field(default_factory=set)
    titles: dict[uuid.UUID, tuple[str, KnowledgeRequested]] = field(default_factory=dict)

    async def applied(self, event: Event) -> bool:
        return event.id in self.applied_ids

    async def removed(self, tenant: str, document: uuid.UUID) -> bool:
        return document in self.gone

    async def record(self, event: KnowledgeRequested, chunks: int) -> None:
        self.applied_ids.add(event.id)
        d = event.data
        if d.action == "remove":
            self.gone.add(d.document)
        else:
            self.parts.setdefault(d.document, {})[d.part] = chunks
            self.titles.setdefault(d.document, (event.tenant, event))

    async def documents(self, tenant: str, removed: bool = False) -> list[KnowledgeDocument]:
        out = []
        for doc, (t, e) in self.titles.items():
            if t != tenant or (doc in self.gone and not removed):
                continue
            parts = self.parts.get(doc, {})
            out.append(KnowledgeDocument(doc, t, e.data.title, e.data.source, e.data.content_type, e.data.parts,
                                         len(parts), sum(parts.values()), e.data.loaded_at, e.data.requested_by,
                                         None))
        return out
