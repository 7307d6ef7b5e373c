"""What memory needs from the outside world, as small protocols (fakes in unit tests)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from agentbus.events import Recall, Turn


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
    async def remember(
        self, event_id: uuid.UUID, tenant: str, conversation: str, turn: Turn,
        outputs: Sequence[object] = (), cause: object | None = None,
    ) -> list[Turn]: ...
