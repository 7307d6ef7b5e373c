"""Semantic memory in Qdrant: one collection per tenant, conversation and text in every point's payload.

A collection per tenant makes isolation structural: recall searches only the tenant's own collection, so
one tenant's memories can never reach another's context. Within it, a search's scope (one conversation, one
person, group chats only) and the ids it leaves out are a payload filter Qdrant applies while it searches
(keyword indexes on the filtered fields), so a narrow scope still gets its own best k.
Upserts from concurrent events are gathered for a few milliseconds and written together.
A Qdrant URL serves production; local mode (a folder) is kept for development against Qdrant's API.
The embedded stack uses ``inprocessvectors`` or ``pgvectorindex`` instead.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from qdrant_client import AsyncQdrantClient, models

from agentbus.batching import MicroBatcher
from agentbus.events import Recall
from agentbus.services.memory.ports import Kind, Origin, Scope

_PAGE = 256  # matches deleted per round when forgetting, points read per scroll when listing
_LISTED = 10_000  # points of one conversation a listing reads at most
_INDEXED = ("conversation", "owner", "chat_type")  # the payload fields a recall filters on


def scope_filter(scope: Scope, exclude: Collection[uuid.UUID]) -> models.Filter | None:
    """The scope of a search as Qdrant's payload filter (the tenant is the collection)."""
    must: list[Any] = []
    if scope.conversation is not None:
        must.append(models.FieldCondition(key="conversation", match=models.MatchValue(value=scope.conversation)))
    if scope.owner is not None:
        must.append(models.FieldCondition(key="owner", match=models.MatchValue(value=scope.owner)))
    if scope.group_only:
        must.append(models.FieldCondition(key="chat_type", match=models.MatchValue(value="group")))
    must_not: list[Any] = [models.HasIdCondition(has_id=[str(i) for i in exclude])] if exclude else []
    return models.Filter(must=must, must_not=must_not) if must or must_not else None


class TenantCollections:
    """One Qdrant collection per tenant, named ``<prefix>__<tenant>``, made on first use with keyword indexes on
    ``indexed`` (a server filters with them; collections made before get the missing ones too)."""

    def __init__(self, client: AsyncQdrantClient, prefix: str, dim: int, indexed: Sequence[str],
                 payload_indexes: bool = True) -> None:
        self._c = client
        self._prefix = prefix
        self._dim = dim
        self._indexed = tuple(indexed)
        self._payload_indexes = payload_indexes
        self._ready: set[str] = set()
        self._lock = asyncio.Lock()

    def name(self, tenant: str) -> str:
        return f"{self._prefix}__{tenant}"

    async def ensure(self, tenant: str) -> str:
        name = self.name(tenant)
        if name in self._ready:
            return name
        async with self._lock:
            if name not in self._ready:
                if not await self._c.collection_exists(name):
                    await self._c.create_collection(
                        name, vectors_config=models.VectorParams(size=self._dim, distance=models.Distance.COSINE)
                    )
                if self._payload_indexes:
                    have = (await self._c.get_collection(name)).payload_schema or {}
                    for key in (k for k in self._indexed if k not in have):
                        await self._c.create_payload_index(name, key, models.PayloadSchemaType.KEYWORD)
                self._ready.add(name)
        return name


class QdrantStore:
    def __init__(self, client: AsyncQdrantClient, collection: str, dim: int, max_batch: int = 256,
                 max_wait_s: float = 0.005, payload_indexes: bool = True) -> None:
        self._c = client
        self._payload_indexes = payload_indexes
        self._collections = TenantCollections(client, collection, dim, _INDEXED, payload_indexes)
        self._batches: MicroBatcher[models.PointStruct, None] = MicroBatcher(self._write, max_batch, max_wait_s)

    @classmethod
    def connect(cls, url: str | None, path: str | None, api_key: str | None, collection: str, dim: int) -> QdrantStore:
        if url:
            return cls(AsyncQdrantClient(url=url, api_key=api_key, timeout=10), collection, dim)
        # local mode filters by scanning, and warns that payload indexes have no effect there
        local = AsyncQdrantClient(path=path) if path else AsyncQdrantClient(location=":memory:")
        return cls(local, collection, dim, payload_indexes=False)

    def collection(self, tenant: str) -> str:
        return self._collections.name(tenant)

    @property
    def client(self) -> AsyncQdrantClient:
        """The connection, shared with the knowledge base's collections."""
        return self._c

    @property
    def payload_indexes(self) -> bool:
        return self._payload_indexes

    async def ensure(self) -> None:
        """Connectivity check at start-up (collections are created per tenant on first use)."""
        await self._c.get_collections()

    async def _ensure(self, tenant: str) -> str:
        return await self._collections.ensure(tenant)

    async def search(
        self, vector: list[float], scope: Scope, limit: int, exclude: Collection[uuid.UUID] = ()
    ) -> list[Recall]:
        name = await self._ensure(scope.tenant)
        res = await self._c.query_points(name, query=vector, limit=limit, query_filter=scope_filter(scope, exclude),
                                         with_payload=True)
        return [_recall(p.id, p.payload or {}, float(p.score)) for p in res.points]

    async def upsert(
        self, point_id: uuid.UUID, vector: list[float], scope: Scope, conversation: str, role: str,
        text: str, at: datetime, kind: Kind = "turn", subject: str | None = None, origin: Origin | None = None,
    ) -> None:
        """Qdrant keeps no tombstones: a turn redelivered after it was forgotten would be written again. The
        window is short (a redelivery comes before the turn's offset is committed, a forget after the
        answer), and the processed record keeps a remember command from being applied twice."""
        name = await self._ensure(scope.tenant)
        o = origin or Origin()
        point = models.PointStruct(
            id=str(point_id),
            vector=vector,
            payload={"tenant": scope.tenant, "conversation": conversation, "role": role, "text": text,
                     "at": at.isoformat(), "kind": kind, "subject": subject, "owner": o.owner, "sender": o.sender,
                     "sender_name": o.sender_name, "channel": o.channel, "chat": o.chat, "chat_name": o.chat_name,
                     "chat_type": o.chat_type},
        )
        await self._batches.submit(name, [point])  # durable (as Qdrant makes it) before the event counts

    async def _write(self, name: str, points: list[models.PointStruct]) -> list[None]:
        await self._c.upsert(name, points=points)
        return [None] * len(points)

    async def forget(self, vector: list[float], scope: Scope, min_score: float) -> list[uuid.UUID]:
        """Rounds of "the next matches above the threshold, then delete them" until none is left."""
        name = await self._ensure(scope.tenant)
        deleted: list[uuid.UUID] = []
        while True:
            res = await self._c.query_points(name, query=vector, limit=_PAGE, score_threshold=min_score,
                                             with_payload=False)
            ids = [p.id for p in res.points]
            if not ids:
                return deleted
            await self._c.delete(name, points_selector=models.PointIdsList(points=ids), wait=True)
            deleted += [uuid.UUID(str(i)) for i in ids]

    async def erase(self, tenant: str, user: str) -> int:
        """Every point whose owner or subject is the person (and, for points stored before owners were kept,
        whose sender is), deleted by one payload filter."""
        name = self.collection(tenant)
        if not await self._c.collection_exists(name):
            return 0
        def be(key: str, value: str) -> models.FieldCondition:
            return models.FieldCondition(key=key, match=models.MatchValue(value=value))

        unowned = models.Filter(must=[be("sender", user), be("role", "user"),
                                      models.IsNullCondition(is_null=models.PayloadField(key="owner"))])
        theirs = models.Filter(should=[be("owner", user), be("subject", user), unowned])
        counted = await self._c.count(name, count_filter=theirs, exact=True)
        await self._c.delete(name, points_selector=models.FilterSelector(filter=theirs), wait=True)
        return int(counted.count)

    async def memories(self, tenant: str, conversation: str, limit: int) -> list[Recall]:
        """Scrolled by the conversation's payload index (Qdrant scrolls in id order: sorted by time here, from at
        most ``_LISTED`` points)."""
        name = await self._ensure(tenant)
        flt = models.Filter(must=[models.FieldCondition(key="conversation",
                                                        match=models.MatchValue(value=conversation))])
        found: list[Recall] = []
        offset: Any = None
        while len(found) < _LISTED:
            points, offset = await self._c.scroll(name, scroll_filter=flt, limit=_PAGE, offset=offset,
                                                  with_payload=True, with_vectors=False)
            found += [_recall(p.id, p.payload or {}, 0.0) for p in points]
            if offset is None:
                break
        found.sort(key=lambda r: r.at.isoformat() if r.at else "", reverse=True)
        return found[:limit]

    async def find(self, tenant: str, ids: Collection[uuid.UUID]) -> list[Recall]:
        if not ids:
            return []
        name = await self._ensure(tenant)  # the tenant's own collection: another tenant's id is not in it
        points = await self._c.retrieve(name, ids=[str(i) for i in ids], with_payload=True, with_vectors=False)
        return [_recall(p.id, p.payload or {}, 0.0) for p in points]

    async def delete(self, tenant: str, ids: Collection[uuid.UUID]) -> list[uuid.UUID]:
        found = [r.event_id for r in await self.find(tenant, ids) if r.event_id is not None]
        if found:
            await self._c.delete(self.collection(tenant), points_selector=models.PointIdsList(
                points=[str(i) for i in found]), wait=True)
        return found

    async def aclose(self) -> None:
        await self._batches.aclose()
        await self._c.close()


def _recall(point_id: Any, pl: dict[str, Any], score: float) -> Recall:
    return Recall(text=pl.get("text", ""), score=score, role=pl.get("role", "user"), at=pl.get("at"),
                  conversation=pl.get("conversation"), kind=pl.get("kind", "turn"), event_id=uuid.UUID(str(point_id)),
                  sender=pl.get("sender"), sender_name=pl.get("sender_name"), channel=pl.get("channel"),
                  chat=pl.get("chat"), chat_name=pl.get("chat_name"), chat_type=pl.get("chat_type"),
                  owner=pl.get("owner") or pl.get("subject"))
