"""Semantic memory without a vector server: vectors kept in PostgreSQL, searched in process with numpy.

This is the embedded stack's vector store (production points ``AGENTBUS_QDRANT_URL`` at a Qdrant server).
Every vector is written to memory's own schema (table ``vectors``), so it is as durable as the turns;
the newest ``max_per_tenant`` vectors of each tenant are held in RAM as one unit-normalised float32
matrix, and a recall is a product with the tenant's rows: one pass over the matrix answers every search of
the tenant waiting at that moment. Tenants never share a
matrix, so one tenant's memories cannot reach another's context; within a tenant, a search's scope (one
conversation, one person) is a mask applied inside the scan (``vectorring``).

Why not Qdrant's local mode: it normalises the whole collection again on every query and commits every
point to SQLite one by one; profiled under load, that was about half of memory's CPU.

Replicas: each replica indexes what it writes at once and picks up what the others wrote at most
``refresh_s`` later, before a search (rows are read back ``_SEQ_MARGIN`` sequence numbers, since
sequence numbers of concurrent transactions become visible out of order). Forgetting deletes the rows and
leaves a tombstone per id numbered from the same sequence, so the same refresh drops them from the other
replicas' matrices; the tombstone also keeps a redelivered write from bringing a forgotten vector back.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

import numpy as np
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from threadpoolctl import threadpool_limits

from agentbus.batching import MicroBatcher
from agentbus.db import columns
from agentbus.events import Recall
from agentbus.services.memory.ports import Kind, Origin, Scope
from agentbus.services.memory.vectorring import Row, TenantIndex, unit

_SEQ_MARGIN = 4096
_SCAN = 4096  # rows read per statement when forgetting (the whole tenant is compared, not only the ring)
Upsert = tuple[Row, str, str | None]  # a row, its tenant and its subject
_COLUMNS = ("seq, id, conversation, role, text, at, kind, owner, sender, sender_name, channel, chat, chat_name, "
            "chat_type, embedding")
_Search = tuple[np.ndarray, int, Collection[uuid.UUID], Scope]  # a unit query, the limit, ids left out, scope
_MEMORY = "id, conversation, role, text, at, kind, sender, sender_name, channel, chat, chat_name, chat_type"


def vector_text(vec: np.ndarray) -> str:
    """A vector as pgvector's text form, ``[x,y,...]``."""
    return "[" + ",".join(map(repr, vec.tolist())) + "]"


def _memory(r: tuple[Any, ...]) -> Recall:
    point_id, conversation, role, text, at, kind, sender, sender_name, channel, chat, chat_name, chat_type = r
    return Recall(text=text, score=0.0, role=role, at=at, conversation=conversation, kind=kind, event_id=point_id,
                  sender=sender, sender_name=sender_name, channel=channel, chat=chat, chat_name=chat_name,
                  chat_type=chat_type)


def _row(r: tuple[Any, ...]) -> tuple[int, Row]:
    """A row of ``_COLUMNS`` as the index holds it, and its sequence number."""
    seq, point_id, conversation, role, text, at, kind, owner, sender, sender_name, channel, chat, chat_name, \
        chat_type, blob = r
    origin = Origin(owner, sender, sender_name, channel, chat, chat_name, chat_type)
    return seq, (point_id, conversation, role, text, at, kind, origin, np.frombuffer(blob, dtype=np.float32))


class VectorTable:
    """Memory's ``vectors`` table, whoever searches it: writes guarded by the tombstones of ``vector_deletions``
    (a forgotten id is never written again), deletions that leave those tombstones, and the operator's reads.
    ``InProcessVectorIndex`` searches it in process, ``PgvectorIndex`` through pgvector's HNSW index."""

    def __init__(self, pool: AsyncConnectionPool, dim: int) -> None:
        self._pool = pool
        self._dim = dim
        self._writer = uuid.uuid4().hex
        self._locks: dict[str, asyncio.Lock] = {}

    def _dropped(self, tenant: str, ids: list[uuid.UUID]) -> None:
        """Rows of ``tenant`` just deleted (by this replica): what a subclass holds of them goes too."""

    async def _insert(self, batch: list[Upsert],
                      vector_type: str | None = None) -> tuple[dict[uuid.UUID, int], set[uuid.UUID]]:
        """One statement for the batch: the rows not forgotten before are inserted (once: a repeat is ignored);
        returns the new rows' sequence numbers and the ids that were forgotten. With ``vector_type`` (pgvector's,
        qualified) the vector is written to its column too, as the text form that type parses."""
        hnsw = vector_type is not None
        cols = columns([(point_id, tenant, conversation, role, text, at, vec.tobytes(), kind, subject, o.owner,
                         o.sender, o.sender_name, o.channel, o.chat, o.chat_name, o.chat_type)
                        + ((vector_text(vec),) if hnsw else ())
                        for (point_id, conversation, role, text, at, kind, o, vec), tenant, subject in batch],
                       17 if hnsw else 16)
        extra = (", %b::text[]", ", v", ", embedding_v", f", v::{vector_type}") if hnsw else ("", "", "", "")
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "WITH u AS (SELECT * FROM unnest(%b::uuid[], %b::text[], %b::text[], %b::text[], %b::text[], "
                "%b::timestamptz[], %b::bytea[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], "
                f"%b::text[], %b::text[], %b::text[], %b::text[]{extra[0]}) "
                f"AS u(i, t, c, r, x, a, e, k, s, ow, se, sn, ch, ct, cn, cy{extra[1]})), "
                "ins AS (INSERT INTO vectors (id, tenant, conversation, role, text, at, embedding, kind, subject, "
                f"owner, sender, sender_name, channel, chat, chat_name, chat_type, writer{extra[2]}) "
                f"SELECT i, t, c, r, x, a, e, k, s, ow, se, sn, ch, ct, cn, cy, %s{extra[3]} FROM u "
                "WHERE NOT EXISTS (SELECT 1 FROM vector_deletions d WHERE d.id = u.i) "
                "ON CONFLICT (id) DO NOTHING RETURNING seq, id) "
                "SELECT seq, id, false FROM ins UNION ALL "
                "SELECT NULL, d.id, true FROM vector_deletions d JOIN u ON d.id = u.i",
                (*cols, self._writer),
            )
            results = await cur.fetchall()
        seqs = {point_id: seq for seq, point_id, forgotten in results if not forgotten}
        return seqs, {point_id for _, point_id, was in results if was}

    async def _delete(self, conn: AsyncConnection[Any], tenant: str, doomed: list[uuid.UUID]) -> list[uuid.UUID]:
        if not doomed:
            return []
        async with self._locks.setdefault(tenant, asyncio.Lock()):
            cur = await conn.execute(
                "WITH gone AS (DELETE FROM vectors WHERE tenant = %s AND id = ANY(%s) RETURNING id) "
                "INSERT INTO vector_deletions (id, tenant, writer) SELECT id, %s, %s FROM gone "
                "ON CONFLICT (id) DO NOTHING RETURNING id",
                (tenant, doomed, tenant, self._writer))
            deleted = [r[0] for r in await cur.fetchall()]
            self._dropped(tenant, deleted)
        return deleted

    async def erase(self, tenant: str, user: str) -> int:
        """The person's rows deleted with their tombstones (a redelivered turn cannot write one again, and an
        in-process index of another replica drops them on its next refresh), under the tenant's lock like a
        forget."""
        async with self._pool.connection() as conn, self._locks.setdefault(tenant, asyncio.Lock()):
            cur = await conn.execute(
                "WITH gone AS (DELETE FROM vectors WHERE tenant = %(t)s AND (owner = %(u)s OR subject = %(u)s "
                "OR (owner IS NULL AND role = 'user' AND sender = %(u)s)) RETURNING id) "
                "INSERT INTO vector_deletions (id, tenant, writer) SELECT id, %(t)s, %(w)s FROM gone "
                "ON CONFLICT (id) DO NOTHING RETURNING id", {"t": tenant, "u": user, "w": self._writer})
            deleted = [r[0] for r in await cur.fetchall()]
            self._dropped(tenant, deleted)
        return len(deleted)

    async def memories(self, tenant: str, conversation: str, limit: int) -> list[Recall]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_MEMORY} FROM vectors WHERE tenant = %s AND conversation = %s ORDER BY seq DESC LIMIT %s",
                (tenant, conversation, limit))
            return [_memory(r) for r in await cur.fetchall()]

    async def find(self, tenant: str, ids: Collection[uuid.UUID]) -> list[Recall]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_MEMORY} FROM vectors WHERE tenant = %s AND id = ANY(%s) ORDER BY seq DESC",
                (tenant, list(ids)))
            return [_memory(r) for r in await cur.fetchall()]

    async def delete(self, tenant: str, ids: Collection[uuid.UUID]) -> list[uuid.UUID]:
        """The rows and their tombstones in one statement, as ``forget`` deletes."""
        async with self._pool.connection() as conn:
            return await self._delete(conn, tenant, list(ids))


class InProcessVectorIndex(VectorTable):
    """The ``VectorStore`` port over memory's ``vectors`` table, searched in an in-process index per tenant (its
    newest ``max_per_tenant`` vectors)."""

    def __init__(self, pool: AsyncConnectionPool, dim: int, max_per_tenant: int = 20_000,
                 refresh_s: float = 1.0, max_batch: int = 256, max_wait_s: float = 0.0) -> None:
        super().__init__(pool, dim)
        self._cap = max_per_tenant
        self._refresh_s = refresh_s
        self._tenants: dict[str, TenantIndex] = {}
        # a tenant's searches issued in the same turn of the event loop, answered in one pass over its matrix
        self._searches: MicroBatcher[_Search, list[Recall]] = MicroBatcher(self._answer, max_batch, 0.0)
        # one batch across tenants: the rows carry their tenant, and one statement writes them all
        self._upserts: MicroBatcher[Upsert, None] = MicroBatcher(self._write, max_batch, max_wait_s)
        # one BLAS thread: a scan is bound by memory bandwidth, and OpenBLAS's extra threads spin after each
        # product, taking a core from the other services (measured: 1.5 ms of CPU per search with two, 1.1
        # with one)
        threadpool_limits(limits=1, user_api="blas")

    async def ensure(self) -> None:
        async with self._pool.connection() as conn:
            await conn.execute("SELECT 1 FROM vectors LIMIT 1")

    def size(self, tenant: str) -> int:
        idx = self._tenants.get(tenant)
        return 0 if idx is None else idx.size

    async def _index(self, tenant: str) -> TenantIndex:
        """The tenant's index, loaded on first use and refreshed with other replicas' writes."""
        idx = self._tenants.get(tenant)
        if idx is not None and time.monotonic() - idx.refreshed < self._refresh_s:
            return idx
        lock = self._locks.setdefault(tenant, asyncio.Lock())
        async with lock:
            idx = self._tenants.get(tenant)
            if idx is not None and time.monotonic() - idx.refreshed < self._refresh_s:
                return idx
            async with self._pool.connection() as conn:
                if idx is None:
                    cur = await conn.execute(
                        f"SELECT {_COLUMNS} FROM vectors WHERE tenant = %s ORDER BY seq DESC LIMIT %s",
                        (tenant, self._cap))
                    rows = list(reversed(await cur.fetchall()))
                    gone: list[tuple[int, uuid.UUID]] = []  # a fresh load reads no deleted row
                    idx = TenantIndex(self._cap, self._dim)
                else:
                    since = (tenant, idx.seq - _SEQ_MARGIN, self._writer)
                    cur = await conn.execute(
                        f"SELECT {_COLUMNS} FROM vectors WHERE tenant = %s AND seq > %s AND writer <> %s "
                        "ORDER BY seq", since)
                    rows = await cur.fetchall()
                    # read after the rows: a row deleted meanwhile is added, then removed here
                    cur = await conn.execute(
                        "SELECT seq, id FROM vector_deletions WHERE tenant = %s AND seq > %s AND writer <> %s",
                        since)
                    gone = await cur.fetchall()
            for r in rows:
                seq, row = _row(r)
                if row[0] in idx.recent:  # read again inside the margin (and maybe evicted since): once only
                    continue
                idx.recent[row[0]] = seq
                idx.add(row)
                idx.seq = max(idx.seq, seq)
            for seq, point_id in gone:  # removing twice (read again inside the margin) is harmless
                idx.remove(point_id)
                idx.seq = max(idx.seq, seq)
            floor = idx.seq - _SEQ_MARGIN
            idx.recent = {k: v for k, v in idx.recent.items() if v > floor}
            idx.refreshed = time.monotonic()
            self._tenants[tenant] = idx
            return idx

    async def search(
        self, vector: list[float], scope: Scope, limit: int, exclude: Collection[uuid.UUID] = ()
    ) -> list[Recall]:
        """Searches of a tenant issued in the same turn of the event loop are answered together, each with its
        own scope applied inside the scan."""
        await self._index(scope.tenant)
        [found] = await self._searches.submit(scope.tenant, [(unit(vector), limit, exclude, scope)])
        return found

    async def _answer(self, tenant: str, asks: list[_Search]) -> list[list[Recall]]:
        idx = self._tenants[tenant]  # loaded by ``_index`` before the search was submitted
        return idx.search(np.stack([q for q, _, _, _ in asks]), [(k, x, s) for _, k, x, s in asks])

    async def upsert(
        self, point_id: uuid.UUID, vector: list[float], scope: Scope, conversation: str, role: str,
        text: str, at: datetime, kind: Kind = "turn", subject: str | None = None, origin: Origin | None = None,
    ) -> None:
        """Durable in PostgreSQL, then searchable. Written with the upserts made in the same turn of the event
        loop (no timer: the handler writes the vector beside the turn's record, so a wait here is latency)."""
        row = (point_id, conversation, role, text, at, kind, origin or Origin(), unit(vector))
        await self._upserts.submit("", [(row, scope.tenant, subject)])

    async def _write(self, _: str, batch: list[Upsert]) -> list[None]:
        seqs, forgotten = await self._insert(batch)
        for row, tenant, _subject in batch:
            idx = self._tenants.get(tenant)
            # a tenant not loaded yet reads its rows from the table when first searched; a forgotten id stays so
            if idx is not None and row[0] not in forgotten:
                idx.add(row)
                idx.seq = max(idx.seq, seqs.get(row[0], 0))
        return [None] * len(batch)

    async def forget(self, vector: list[float], scope: Scope, min_score: float) -> list[uuid.UUID]:
        """Compares the query with every row of the tenant in the table (the ring holds only the newest), then
        deletes the matches and leaves their tombstones in one statement, under the tenant's lock so that a
        refresh in flight cannot add a deleted row back to this replica's matrix."""
        query = unit(vector)
        doomed: list[uuid.UUID] = []
        after = -1
        async with self._pool.connection() as conn:
            while True:
                cur = await conn.execute(
                    "SELECT seq, id, embedding FROM vectors WHERE tenant = %s AND seq > %s ORDER BY seq LIMIT %s",
                    (scope.tenant, after, _SCAN))
                rows = await cur.fetchall()
                if rows:
                    scores = np.stack([np.frombuffer(blob, dtype=np.float32) for _, _, blob in rows]) @ query
                    doomed += [rows[i][1] for i in np.flatnonzero(scores >= min_score).tolist()]
                    after = rows[-1][0]
                if len(rows) < _SCAN:
                    break
            return await self._delete(conn, scope.tenant, doomed)

    def _dropped(self, tenant: str, ids: list[uuid.UUID]) -> None:
        idx = self._tenants.get(tenant)
        if idx is not None:
            for point_id in ids:
                idx.remove(point_id)

    async def aclose(self) -> None:
        await self._searches.aclose()
        await self._upserts.aclose()
