"""Semantic memory searched inside PostgreSQL through pgvector's HNSW index, when the server has the extension.

The rows are memory's ``vectors`` table (``VectorTable``), with one more column, ``embedding_v``, of pgvector's
type, and an HNSW index on it (cosine distance). Nothing is held in process and nothing is capped: a recall
searches every vector of the tenant, not only the newest ``vectors_max_per_tenant`` the in-process index
keeps, and every replica sees every write at once.

A search's scope (tenant, conversation, person, group chats only) and the ids it leaves out are a ``WHERE``
clause. An HNSW scan returns its ``ef_search`` nearest candidates before filtering, so pgvector's iterative
scan (``hnsw.iterative_scan = relaxed_order``, pgvector 0.8) goes on scanning until enough rows pass the
filter; when it still finds fewer than asked (a narrow scope among many better matches, past
``hnsw.max_scan_tuples``), the scope's rows are ranked exactly instead, through the btree indexes on
(tenant, conversation) and (tenant, owner): a narrow scope is few rows. Relaxed order may return neighbours
slightly out of order, so the hits are sorted again by their distance.

The column and the index are made at start-up (the type exists only with the extension, so no migration can
name it), under an advisory lock so that replicas starting together do it once; rows written before the
column existed are given their vector from the ``embedding`` bytes there, so switching from the in-process
index loses nothing, and every row still carries those bytes, so switching back does not either.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

import numpy as np
import structlog
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from agentbus.batching import MicroBatcher
from agentbus.events import Recall
from agentbus.services.memory.inprocessvectors import Upsert, VectorTable, vector_text
from agentbus.services.memory.ports import Kind, Origin, Scope
from agentbus.services.memory.vectorring import unit

log = structlog.get_logger()

_LOCK = 0x6167_6D76  # the advisory lock id under which replicas add the column and the index
_BACKFILL = 1000  # rows given their pgvector column per statement at start-up
_EF_SEARCH = 100  # HNSW candidates per scan round (pgvector's default 40 loses recall on filtered scans)
_RECALL = ("id, conversation, role, text, at, kind, sender, sender_name, channel, chat, chat_name, chat_type, "
           "distance")


class PgvectorUnavailable(RuntimeError):
    """The server has no ``vector`` extension, or it may not be created by this role."""


async def pgvector_available(pool: AsyncConnectionPool) -> bool:
    """Whether the server can hold pgvector's type: the extension is installed or can be."""
    async with pool.connection() as conn:
        row = await (await conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')")).fetchone()
    return bool(row and row[0])


def _where(scope: Scope, exclude: Collection[uuid.UUID]) -> tuple[str, dict[str, Any]]:
    clauses = ["tenant = %(tenant)s", "embedding_v IS NOT NULL"]
    params: dict[str, Any] = {"tenant": scope.tenant}
    if scope.conversation is not None:
        clauses.append("conversation = %(conversation)s")
        params["conversation"] = scope.conversation
    if scope.owner is not None:
        clauses.append("owner = %(owner)s")
        params["owner"] = scope.owner
    if scope.group_only:
        clauses.append("chat_type = 'group'")
    if exclude:
        clauses.append("NOT (id = ANY(%(exclude)s))")
        params["exclude"] = list(exclude)
    return " AND ".join(clauses), params


def _recall(r: tuple[Any, ...]) -> Recall:
    point_id, conversation, role, text, at, kind, sender, sender_name, channel, chat, chat_name, chat_type, \
        distance = r
    return Recall(text=text, score=1.0 - float(distance), role=role, at=at, conversation=conversation, kind=kind,
                  event_id=point_id, sender=sender, sender_name=sender_name, channel=channel, chat=chat,
                  chat_name=chat_name, chat_type=chat_type)


class PgvectorIndex(VectorTable):
    """The ``VectorStore`` port over memory's ``vectors`` table, searched by pgvector's HNSW index."""

    def __init__(self, pool: AsyncConnectionPool, dim: int, ef_search: int = _EF_SEARCH, max_batch: int = 256) -> None:
        super().__init__(pool, dim)
        self._ef_search = ef_search
        # the upserts of one turn of the event loop, across tenants, in one statement (as the in-process index)
        self._upserts: MicroBatcher[Upsert, None] = MicroBatcher(self._write, max_batch, 0.0)
        self.exact_searches = 0  # searches the HNSW scan answered short, ranked exactly instead
        self._qualify("public")  # until ``ensure`` has found the extension

    async def ensure(self) -> None:
        """The extension, the column (of this dimension) and the HNSW index, and every older row's vector."""
        if not await pgvector_available(self._pool):
            raise PgvectorUnavailable("the PostgreSQL server has no 'vector' extension (pgvector)")
        async with self._pool.connection() as conn:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
                self._qualify(await self._extension(conn))
                have = await (await conn.execute(
                    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'vectors'::regclass "
                    "AND attname = 'embedding_v' AND NOT attisdropped")).fetchone()
                if have is None:
                    await conn.execute(f"ALTER TABLE vectors ADD COLUMN embedding_v {self._vector}({int(self._dim)})")
                elif not have[0].endswith(f"vector({self._dim})"):
                    raise PgvectorUnavailable(f"memory's vectors are {have[0]}, the embeddings are {self._dim}-"
                                              "dimensional: re-embed, or set AGENTBUS_EMBEDDINGS_DIM to match")
                filled = await self._backfill(conn)
                await conn.execute("CREATE INDEX IF NOT EXISTS vectors_embedding_hnsw ON vectors "
                                   f"USING hnsw (embedding_v {self._schema}.vector_cosine_ops)")
                await conn.execute("CREATE INDEX IF NOT EXISTS vectors_tenant_owner ON vectors (tenant, owner)")
        if filled:
            log.info("pgvector_backfilled", rows=filled)

    @staticmethod
    async def _extension(conn: AsyncConnection[Any]) -> str:
        """The schema pgvector lives in, created in its own ``extensions`` schema if it is not installed yet
        (not in memory's: dropping one schema must not take the type from under another's columns)."""
        row = await (await conn.execute(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'vector'")).fetchone()
        if row is not None:
            return str(row[0])
        try:
            await conn.execute("CREATE SCHEMA IF NOT EXISTS extensions")
            await conn.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA extensions")
        except Exception as exc:
            raise PgvectorUnavailable(f"cannot create the 'vector' extension: {exc}") from exc
        return "extensions"

    def _qualify(self, schema: str) -> None:
        """pgvector's names as this index's statements spell them: qualified, as memory's search path holds only
        its own schema."""
        self._schema = '"' + schema.replace('"', '""') + '"'
        self._vector = f"{self._schema}.vector"
        self._distance = f"OPERATOR({self._schema}.<=>)"

    async def _backfill(self, conn: AsyncConnection[Any]) -> int:
        done = 0
        while True:
            rows = await (await conn.execute(
                "SELECT id, embedding FROM vectors WHERE embedding_v IS NULL LIMIT %s", (_BACKFILL,))).fetchall()
            if not rows:
                return done
            await conn.execute(
                f"UPDATE vectors SET embedding_v = u.v::{self._vector} FROM unnest(%s::uuid[], %s::text[]) AS u(i, v) "
                "WHERE vectors.id = u.i",
                ([r[0] for r in rows], [vector_text(np.frombuffer(r[1], dtype=np.float32)) for r in rows]))
            done += len(rows)

    def size(self, tenant: str) -> int:
        return 0  # nothing is held in process

    async def search(
        self, vector: list[float], scope: Scope, limit: int, exclude: Collection[uuid.UUID] = ()
    ) -> list[Recall]:
        where, params = _where(scope, exclude)
        params |= {"q": vector_text(unit(vector)), "k": limit}
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT set_config('hnsw.ef_search', %s, true), "  # SET LOCAL, in one round trip
                               "set_config('hnsw.iterative_scan', 'relaxed_order', true)", (str(int(self._ef_search)),))
            d = f"embedding_v {self._distance} %(q)s::{self._vector}"
            rows = await (await conn.execute(
                f"WITH hits AS MATERIALIZED (SELECT *, {d} AS distance FROM vectors WHERE {where} "
                f"ORDER BY {d} LIMIT %(k)s) SELECT {_RECALL} FROM hits ORDER BY distance", params)).fetchall()
            if len(rows) < limit:
                # short of the limit: the scope has fewer rows, or the scan gave up first. Ranked exactly (the
                # ``+ 0`` keeps the planner off the HNSW index, which would give up the same way)
                exact = await (await conn.execute(
                    f"SELECT {_RECALL} FROM (SELECT *, ({d}) + 0 AS distance FROM vectors WHERE {where}) AS s "
                    "ORDER BY distance LIMIT %(k)s", params)).fetchall()
                if len(exact) > len(rows):
                    self.exact_searches += 1
                    rows = exact
        return [_recall(r) for r in rows]

    async def upsert(
        self, point_id: uuid.UUID, vector: list[float], scope: Scope, conversation: str, role: str,
        text: str, at: datetime, kind: Kind = "turn", subject: str | None = None, origin: Origin | None = None,
    ) -> None:
        """Durable and searchable by every replica once this returns; a forgotten id is not written again."""
        row = (point_id, conversation, role, text, at, kind, origin or Origin(), unit(vector))
        await self._upserts.submit("", [(row, scope.tenant, subject)])

    async def _write(self, _: str, batch: list[Upsert]) -> list[None]:
        await self._insert(batch, self._vector)
        return [None] * len(batch)

    async def forget(self, vector: list[float], scope: Scope, min_score: float) -> list[uuid.UUID]:
        """Every row of the tenant at least ``min_score`` similar, compared exactly, deleted with tombstones."""
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(
                f"SELECT id FROM vectors WHERE tenant = %s AND (embedding_v {self._distance} %s::{self._vector}) + 0 "
                "<= %s",
                (scope.tenant, vector_text(unit(vector)), 1.0 - min_score))).fetchall()
            return await self._delete(conn, scope.tenant, [r[0] for r in rows])

    async def aclose(self) -> None:
        await self._upserts.aclose()
