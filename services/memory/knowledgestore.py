"""The tenant's knowledge base in memory's own schema: the catalogue of documents (always here), and the chunks
with their vectors when PostgreSQL holds them (no Qdrant URL).

Chunks are searched the way memory's vectors are: by pgvector's HNSW index when memory's index is pgvector
(the column and the index are added at start, as ``pgvectorindex`` does for ``vectors``), else in process,
exactly, over a matrix per tenant. A knowledge base is documents, not conversations: thousands of chunks, not
millions, and it changes when an operator loads or removes one, so the matrix is read again only when the
tenant's chunks changed (their count and newest sequence number, asked of the table before each search:
every replica sees a load or a removal at its next recall).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from psycopg_pool import AsyncConnectionPool

from agentbus.db import processed_outputs, record_batch
from agentbus.events import Event, KnowledgeRequested, Recall
from agentbus.services.memory.inprocessvectors import vector_text
from agentbus.services.memory.ports import KnowledgeDocument, KnowledgeRow, knowledge_recall
from agentbus.services.memory.vectorring import unit

_LOCK = 0x6167_6B62  # the advisory lock under which replicas add the pgvector column and index
_COLUMNS = "id, document, title, section, position, text, loaded_at"


class PgKnowledgeCatalogue:
    """The ``KnowledgeCatalogue`` port over ``knowledge_documents`` and ``knowledge_parts``."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def applied(self, event: Event) -> bool:
        async with self._pool.connection() as conn:
            return await processed_outputs(conn, event) is not None

    async def removed(self, tenant: str, document: uuid.UUID) -> bool:
        async with self._pool.connection() as conn:
            row = await (await conn.execute(
                "SELECT removed_at IS NOT NULL FROM knowledge_documents WHERE id = %s AND tenant = %s",
                (document, tenant))).fetchone()
        return bool(row and row[0])

    async def record(self, event: KnowledgeRequested, chunks: int) -> None:
        d = event.data
        async with self._pool.connection() as conn, conn.transaction():
            if d.action == "add":
                await conn.execute(
                    "INSERT INTO knowledge_documents (id, tenant, title, source, content_type, parts, loaded_at, "
                    "requested_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                    (d.document, event.tenant, d.title, d.source, d.content_type, d.parts, d.loaded_at,
                     d.requested_by))
                effect = ("INSERT INTO knowledge_parts (document, part, chunks) VALUES (%s, %s, %s) "
                          "ON CONFLICT DO NOTHING", [d.document, d.part, chunks])
            else:  # a removal of a document never loaded here still leaves its tombstone
                effect = ("INSERT INTO knowledge_documents (id, tenant, requested_by, removed_at) "
                          "VALUES (%s, %s, %s, now()) ON CONFLICT (id) DO UPDATE SET "
                          "removed_at = COALESCE(knowledge_documents.removed_at, now()) "
                          "WHERE knowledge_documents.tenant = EXCLUDED.tenant",
                          [d.document, event.tenant, d.requested_by])
            await record_batch(conn, [(event, [])], effect)

    async def documents(self, tenant: str, removed: bool = False) -> list[KnowledgeDocument]:
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(
                "SELECT d.id, d.tenant, d.title, d.source, d.content_type, d.parts, count(p.part), "
                "coalesce(sum(p.chunks), 0), d.loaded_at, d.requested_by, d.removed_at "
                "FROM knowledge_documents d LEFT JOIN knowledge_parts p ON p.document = d.id "
                "WHERE d.tenant = %s AND (%s OR d.removed_at IS NULL) AND d.loaded_at IS NOT NULL "
                "GROUP BY d.id ORDER BY d.loaded_at DESC, d.id", (tenant, removed))).fetchall()
        return [KnowledgeDocument(r[0], r[1], r[2], r[3], r[4], int(r[5]), int(r[6]), int(r[7]), r[8], r[9], r[10])
                for r in rows]


def _recall(r: tuple[Any, ...], score: float) -> Recall:
    point_id, document, title, section, position, text, loaded_at = r[:7]
    return knowledge_recall(point_id, document, title, section, position, text, loaded_at, score)


@dataclass
class _Matrix:
    stamp: tuple[int, int]
    vectors: np.ndarray
    meta: list[tuple[Any, ...]]


class PgKnowledge:
    """The ``KnowledgeBase`` port over ``knowledge_chunks``: searched by pgvector (``pgvector`` True, after
    ``ensure``) or in process."""

    def __init__(self, pool: AsyncConnectionPool, dim: int, pgvector: bool = False) -> None:
        self._pool = pool
        self._dim = dim
        self._pgvector = pgvector
        self._vector = self._distance = ""
        self._tenants: dict[str, _Matrix] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def searched_by(self) -> str:
        return "pgvector" if self._pgvector else "in_process"

    async def ensure(self) -> None:
        """With pgvector (its extension made already by memory's vector index): the column and HNSW index."""
        async with self._pool.connection() as conn:
            if not self._pgvector:
                await conn.execute("SELECT 1 FROM knowledge_chunks LIMIT 1")
                return
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
                row = await (await conn.execute(
                    "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                    "WHERE e.extname = 'vector'")).fetchone()
                if row is None:
                    raise RuntimeError("the 'vector' extension is not installed")
                schema = '"' + str(row[0]).replace('"', '""') + '"'
                self._vector, self._distance = f"{schema}.vector", f"OPERATOR({schema}.<=>)"
                await conn.execute(f"ALTER TABLE knowledge_chunks ADD COLUMN IF NOT EXISTS embedding_v "
                                   f"{self._vector}({int(self._dim)})")
                await conn.execute("CREATE INDEX IF NOT EXISTS knowledge_chunks_hnsw ON knowledge_chunks "
                                   f"USING hnsw (embedding_v {schema}.vector_cosine_ops)")
            rows = await (await conn.execute(
                "SELECT id, embedding FROM knowledge_chunks WHERE embedding_v IS NULL")).fetchall()
            for point_id, blob in rows:  # chunks stored while the index was in process: given their column
                await conn.execute(f"UPDATE knowledge_chunks SET embedding_v = %s::{self._vector} WHERE id = %s",
                                   (vector_text(np.frombuffer(blob, dtype=np.float32)), point_id))

    async def add(self, tenant: str, rows: Sequence[KnowledgeRow]) -> None:
        if not rows:
            return
        vecs = [unit(r.vector) for r in rows]
        cols: list[list[Any]] = [[r.id for r in rows], [r.document for r in rows], [r.title for r in rows],
                                 [r.section for r in rows], [r.position for r in rows], [r.text for r in rows],
                                 [r.loaded_at for r in rows], [v.tobytes() for v in vecs]]
        extra = ("", "", "", "")
        if self._pgvector:
            cols.append([vector_text(v) for v in vecs])
            extra = (", %s::text[]", ", v", ", embedding_v", f", v::{self._vector}")
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO knowledge_chunks (id, tenant, document, title, section, position, text, loaded_at, "
                f"embedding{extra[2]}) SELECT i, %s, d, ti, s, p, x, a, e{extra[3]} FROM unnest(%s::uuid[], "
                f"%s::uuid[], %s::text[], %s::text[], %s::int[], %s::text[], %s::timestamptz[], %s::bytea[]"
                f"{extra[0]}) AS u(i, d, ti, s, p, x, a, e{extra[1]}) ON CONFLICT (id) DO NOTHING",
                (tenant, *cols))

    async def remove(self, tenant: str, document: uuid.UUID) -> int:
        async with self._pool.connection() as conn:
            cur = await conn.execute("DELETE FROM knowledge_chunks WHERE tenant = %s AND document = %s",
                                     (tenant, document))
            gone = cur.rowcount
        self._tenants.pop(tenant, None)
        return gone

    async def search(self, tenant: str, vector: list[float], limit: int) -> list[Recall]:
        if limit <= 0:
            return []
        if self._pgvector:
            return await self._search_pgvector(tenant, vector, limit)
        m = await self._matrix(tenant)
        if not m.meta:
            return []
        scores = m.vectors @ unit(vector)
        best = np.argsort(-scores)[:limit]
        return [_recall(m.meta[i], float(scores[i])) for i in best.tolist()]

    async def _search_pgvector(self, tenant: str, vector: list[float], limit: int) -> list[Recall]:
        d = f"embedding_v {self._distance} %(q)s::{self._vector}"
        params = {"t": tenant, "q": vector_text(unit(vector)), "k": limit}
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            rows = await (await conn.execute(
                f"SELECT {_COLUMNS}, {d} AS distance FROM knowledge_chunks WHERE tenant = %(t)s "
                f"AND embedding_v IS NOT NULL ORDER BY {d} LIMIT %(k)s", params)).fetchall()
            if len(rows) < limit:  # the scan gave up short (other tenants' chunks nearer): ranked exactly
                rows = await (await conn.execute(
                    f"SELECT {_COLUMNS}, ({d}) + 0 AS distance FROM knowledge_chunks WHERE tenant = %(t)s "
                    "AND embedding_v IS NOT NULL ORDER BY distance LIMIT %(k)s", params)).fetchall()
        found = [_recall(r, 1.0 - float(r[7])) for r in rows]
        return sorted(found, key=lambda r: -r.score)

    async def _matrix(self, tenant: str) -> _Matrix:
        """The tenant's chunks as a matrix, read again when they changed since."""
        async with self._pool.connection() as conn:
            row = await (await conn.execute(
                "SELECT count(*), coalesce(max(seq), 0) FROM knowledge_chunks WHERE tenant = %s",
                (tenant,))).fetchone()
            stamp = (int(row[0]), int(row[1])) if row else (0, 0)
            have = self._tenants.get(tenant)
            if have is not None and have.stamp == stamp:
                return have
            async with self._locks.setdefault(tenant, asyncio.Lock()):
                rows = await (await conn.execute(
                    f"SELECT {_COLUMNS}, embedding FROM knowledge_chunks WHERE tenant = %s ORDER BY seq",
                    (tenant,))).fetchall()
        vectors = (np.stack([np.frombuffer(r[7], dtype=np.float32) for r in rows]) if rows
                   else np.zeros((0, self._dim), dtype=np.float32))
        m = _Matrix(stamp, vectors, [tuple(r[:7]) for r in rows])
        self._tenants[tenant] = m
        return m

    async def aclose(self) -> None:
        self._tenants.clear()
