"""What memory's handlers need from outside, as small protocols.

The handlers decide what a turn means (which history it sees, what context it makes, whether a replay may
write anything); these ports only read and write. Bootstrap wires PostgreSQL, Qdrant and the embeddings
server to them, and unit tests wire fakes that record what happened, both checked against these protocols.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from agentbus.events import Event, Recall, Turn


class Embedder(Protocol):
    async def embed(self, texts: Sequence[str], kind: str) -> list[list[float]]: ...


class VectorStore(Protocol):
    async def search(
        self, vector: list[float], tenant: str, limit: int, exclude: uuid.UUID | None
    ) -> list[Recall]: ...

    async def upsert(
        self, point_id: uuid.UUID, vector: list[float], tenant: str, conversation: str, role: str,
        text: str, at: datetime,
    ) -> None: ...


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
