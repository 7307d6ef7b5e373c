"""What memory's handlers need from outside, as small protocols.

The handlers decide what a turn means (which history it sees, what context it makes, whether a replay may
write anything); these ports only read and write. Bootstrap wires PostgreSQL, Qdrant and the embeddings
server to them, and unit tests wire fakes that record what happened, both checked against these protocols.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from agentbus.events import Event, MemoryRequested, Recall, Turn

Kind = Literal["turn", "fact"]


@dataclass(frozen=True)
class Scope:
    """Whose memories a search, a write or a deletion may touch. Today a tenant's; per-user memory narrows
    it with a field here, which every adapter then filters on, so no signature has to change."""

    tenant: str

    @classmethod
    def of(cls, event: Event) -> Scope:
        return cls(tenant=event.tenant)


class Embedder(Protocol):
    async def embed(self, texts: Sequence[str], kind: str) -> list[list[float]]: ...


class VectorStore(Protocol):
    async def search(
        self, vector: list[float], scope: Scope, limit: int, exclude: uuid.UUID | None
    ) -> list[Recall]: ...

    async def upsert(
        self, point_id: uuid.UUID, vector: list[float], scope: Scope, conversation: str, role: str,
        text: str, at: datetime, kind: Kind = "turn", subject: str | None = None,
    ) -> None:
        """Idempotent by ``point_id``; an id forgotten before is never written again (a redelivered turn
        must not bring back what someone asked to forget)."""
        ...

    async def forget(self, vector: list[float], scope: Scope, min_score: float) -> list[uuid.UUID]:
        """Delete every vector of the scope whose cosine similarity to ``vector`` is at least ``min_score``
        (all of them, not only the newest a search sees), everywhere it is searched; returns their ids."""
        ...


class CommandLog(Protocol):
    """The record of applied ``memory.requested`` commands, which is also their processed-events record."""

    async def applied(self, event: Event) -> bool: ...

    async def record(self, event: MemoryRequested, deleted: Sequence[uuid.UUID]) -> None:
        """Record the command as applied (and what it deleted), with its processed record, both or neither."""
        ...


class TurnStore(Protocol):
    async def history(
        self, conversation: str, limit: int = 50, before: datetime | None = None, exclude: uuid.UUID | None = None
    ) -> list[Turn]:
        """The newest ``limit`` turns of the conversation at ``before`` (all, without it), oldest first,
        leaving out the turn of the event ``exclude`` (a redelivered event must not see itself)."""
        ...

    async def remember(self, event: Event, turn: Turn | None, outputs: Sequence[Event]) -> list[Event]:
        """Write ``turn`` (None: nothing to keep) with the record that ``event`` was processed into
        ``outputs``, both or neither. Returns the outputs recorded for the event: these, or, when the event
        was recorded before (a redelivery), those of the first time."""
        ...
