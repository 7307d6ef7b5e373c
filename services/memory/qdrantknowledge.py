"""The tenant's knowledge base in Qdrant: a collection per tenant of its own (``<prefix>_knowledge__<tenant>``),
beside the tenant's memories, never mixed with them (a forget or an erasure searches only the memories).

A chunk's point id is the chunk's id, so a part stored twice writes the same points; a document is removed by
a payload filter on its id (keyword index on the server).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from qdrant_client import AsyncQdrantClient, models

from agentbus.events import Recall
from agentbus.services.memory.ports import KnowledgeRow, knowledge_recall
from agentbus.services.memory.vectors import TenantCollections


class QdrantKnowledge:
    """The ``KnowledgeBase`` port over Qdrant (the client is the memories' store's, shared)."""

    def __init__(self, client: AsyncQdrantClient, collection: str, dim: int, payload_indexes: bool = True) -> None:
        self._c = client
        self._collections = TenantCollections(client, f"{collection}_knowledge", dim, ("document",), payload_indexes)

    def collection(self, tenant: str) -> str:
        return self._collections.name(tenant)

    async def _ensure(self, tenant: str) -> str:
        return await self._collections.ensure(tenant)

    async def add(self, tenant: str, rows: Sequence[KnowledgeRow]) -> None:
        if not rows:
            return
        name = await self._ensure(tenant)
        points = [models.PointStruct(id=str(r.id), vector=r.vector, payload={
            "document": str(r.document), "title": r.title, "section": r.section, "position": r.position,
            "text": r.text, "loaded_at": r.loaded_at.isoformat()}) for r in rows]
        await self._c.upsert(name, points=points, wait=True)

    async def search(self, tenant: str, vector: list[float], limit: int) -> list[Recall]:
        if limit <= 0 or not await self._c.collection_exists(self.collection(tenant)):
            return []
        res = await self._c.query_points(self.collection(tenant), query=vector, limit=limit, with_payload=True)
        return [_recall(p.id, p.payload or {}, float(p.score)) for p in res.points]

    async def remove(self, tenant: str, document: uuid.UUID) -> int:
        name = self.collection(tenant)
        if not await self._c.collection_exists(name):
            return 0
        flt = models.Filter(must=[models.FieldCondition(key="document",
                                                        match=models.MatchValue(value=str(document)))])
        counted = await self._c.count(name, count_filter=flt, exact=True)
        await self._c.delete(name, points_selector=models.FilterSelector(filter=flt), wait=True)
        return int(counted.count)


def _recall(point_id: Any, pl: dict[str, Any], score: float) -> Recall:
    return knowledge_recall(uuid.UUID(str(point_id)), uuid.UUID(str(pl["document"])), str(pl.get("title", "")),
                            pl.get("section"), int(pl.get("position", 0)), str(pl.get("text", "")),
                            datetime.fromisoformat(str(pl["loaded_at"])), score)
