"""Semantic memory in Qdrant: one collection, tenant and conversation in every point's payload.

Recall always filters on the tenant, so one tenant's memories never reach another tenant's context.
Local mode (a folder, one process) serves the embedded stack; a Qdrant URL serves production.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from qdrant_client import AsyncQdrantClient, models

from agentbus.events import Recall


class QdrantStore:
    def __init__(self, client: AsyncQdrantClient, collection: str, dim: int) -> None:
        self._c = client
        self._collection = collection
        self._dim = dim

    @classmethod
    def connect(cls, url: str | None, path: str | None, api_key: str | None, collection: str, dim: int) -> QdrantStore:
        if url:
            client = AsyncQdrantClient(url=url, api_key=api_key, timeout=10)
        elif path:
            client = AsyncQdrantClient(path=path)
        else:
            client = AsyncQdrantClient(location=":memory:")
        return cls(client, collection, dim)

    async def ensure(self) -> None:
        if not await self._c.collection_exists(self._collection):
            await self._c.create_collection(
                self._collection,
                vectors_config=models.VectorParams(size=self._dim, distance=models.Distance.COSINE),
            )
            for field in ("tenant", "conversation"):
                await self._c.create_payload_index(self._collection, field, models.PayloadSchemaType.KEYWORD)

    async def search(
        self, vector: list[float], tenant: str, limit: int, exclude: uuid.UUID | None
    ) -> list[Recall]:
        must_not: list[models.Condition] = []
        if exclude is not None:
            must_not.append(models.HasIdCondition(has_id=[str(exclude)]))
        res = await self._c.query_points(
            self._collection,
            query=vector,
            limit=limit,
            query_filter=models.Filter(
                must=[models.FieldCondition(key="tenant", match=models.MatchValue(value=tenant))],
                must_not=must_not,
            ),
            with_payload=True,
        )
        out = []
        for p in res.points:
            pl = p.payload or {}
            if pl.get("tenant") != tenant:  # defence in depth: never cross tenants
                continue
            out.append(
                Recall(
                    text=pl.get("text", ""),
                    score=float(p.score),
                    role=pl.get("role", "user"),
                    at=pl.get("at"),
                    conversation=pl.get("conversation"),
                )
            )
        return out

    async def upsert(
        self, point_id: uuid.UUID, vector: list[float], tenant: str, conversation: str, role: str,
        text: str, at: datetime,
    ) -> None:
        await self._c.upsert(
            self._collection,
            points=[
                models.PointStruct(
                    id=str(point_id),
                    vector=vector,
                    payload={
                        "tenant": tenant,
                        "conversation": conversation,
                        "role": role,
                        "text": text,
                        "at": at.isoformat(),
                    },
                )
            ],
        )

    async def aclose(self) -> None:
        await self._c.close()
