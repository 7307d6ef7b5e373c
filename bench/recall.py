"""Recall latency at 10k, 100k (and 1M) vectors per tenant, through pgvector's HNSW index and the in-process index
(`make bench-recall`, and the ``recall`` scenario of `make bench`).

Starts the embedded PostgreSQL, fills memory's ``vectors`` table of one tenant with N synthetic 384-dimensional
embeddings (clustered, as sentence embeddings are: 1,000 topics, 100 people owning 1% each), then times
SAMPLES recalls of each store one after another, as memory asks them: in the tenant's scope, and in one person's
(``user``, the default scope: 1% of the rows). Reported per size and store: latency p50/p95, CPU per recall in
this process (where the in-process index computes) and in PostgreSQL (where pgvector does), and recall@10
against the exact answer computed with numpy over every vector. The in-process index holds the newest
``max_per_tenant`` (20,000) vectors, so above that its answers are from those only, which its recall@10 shows.
Prints one table and writes JSON to bench/results/recall-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from psycopg_pool import AsyncConnectionPool

from agentbus.db import migrate, open_pool
from agentbus.services.memory.inprocessvectors import InProcessVectorIndex, vector_text
from agentbus.services.memory.pgvectorindex import PgvectorIndex
from agentbus.services.memory.ports import Scope
from agentbus.settings import Settings
from agentbus.stack.stack import Ports, Stack

DIM = 384
TOPICS = 1000
PEOPLE = 100
FILL = 2000  # rows per INSERT


def corpus(n: int, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors around ``TOPICS`` centres, and each one's owner (0..PEOPLE-1)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(TOPICS, DIM)).astype(np.float32)
    vecs = centres[rng.integers(0, TOPICS, n)] + rng.normal(scale=0.6, size=(n, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs, rng.integers(0, PEOPLE, n)


async def fill(pool: AsyncConnectionPool, vecs: np.ndarray, owners: np.ndarray, vector_type: str | None) -> float:
    """The rows straight into the table (both the bytes the in-process index reads and, when pgvector is there,
    its column), oldest first; returns seconds."""
    t0 = time.monotonic()
    at0 = datetime.now(UTC) - timedelta(days=365)
    for start in range(0, len(vecs), FILL):
        chunk = range(start, min(start + FILL, len(vecs)))
        ids = [uuid.uuid4() for _ in chunk]
        ats = [at0 + timedelta(seconds=i) for i in chunk]
        blobs = [vecs[i].tobytes() for i in chunk]
        own = [f"u{owners[i]}" for i in chunk]
        texts = [f"memory {i}" for i in chunk]
        cols = "id, tenant, conversation, role, text, at, embedding, owner, chat_type, writer"
        vals = ("SELECT i, 'acme', 'acme/c/' || o, 'user', x, a, e, o, 'direct', 'bench' FROM "
                "unnest(%s::uuid[], %s::text[], %s::timestamptz[], %s::bytea[], %s::text[]) AS u(i, x, a, e, o)")
        params: list[Any] = [ids, texts, ats, blobs, own]
        if vector_type:
            cols += ", embedding_v"
            vals = vals.replace("'bench' FROM", f"'bench', v::{vector_type} FROM").replace(
                "%s::text[]) AS u(i, x, a, e, o)", "%s::text[], %s::text[]) AS u(i, x, a, e, o, v)")
            params.append([vector_text(vecs[i]) for i in chunk])
        async with pool.connection() as conn:
            await conn.execute(f"INSERT INTO vectors ({cols}) {vals}", params)
    return time.monotonic() - t0


def postgres_procs(pgdata: Path) -> list[psutil.Process]:
    master = psutil.Process(int((pgdata / "postmaster.pid").read_text().split()[0]))
    return [master, *master.children(recursive=True)]


def cpu_s(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return total


async def time_store(name: str, store: Any, queries: np.ndarray, scopes: list[Scope], truth: list[set[int]],
                     id_of: dict[uuid.UUID, int], pgdata: Path) -> dict[str, Any]:
    await store.search(queries[0].tolist(), scopes[0], 10)  # loads (in process) / warms (PostgreSQL)
    me = psutil.Process()
    timings, hits = [], []
    pg = postgres_procs(pgdata)
    cpu0, pg0 = me.cpu_times(), cpu_s(pg)
    for q, scope, want in zip(queries, scopes, truth, strict=True):
        t = time.perf_counter()
        found = await store.search(q.tolist(), scope, 10)
        timings.append((time.perf_counter() - t) * 1000)
        hits.append(len({id_of[r.event_id] for r in found} & want) / max(1, min(10, len(want))))
    cpu1, pg1 = me.cpu_times(), cpu_s(pg)
    n = len(queries)
    q95 = statistics.quantiles(timings, n=20)[18]
    return {"store": name, "p50_ms": round(statistics.median(timings), 2), "p95_ms": round(q95, 2),
            "cpu_ms_here": round((cpu1.user + cpu1.system - cpu0.user - cpu0.system) * 1000 / n, 2),
            "cpu_ms_postgres": round((pg1 - pg0) * 1000 / n, 2), "recall_at_10": round(statistics.mean(hits), 3)}


async def one_size(s: Settings, schema: str, n: int, samples: int, pgdata: Path,
                   max_per_tenant: int) -> list[dict[str, Any]]:
    pool = await open_pool(s, schema, max_size=4)
    try:
        await migrate(pool, schema, Path(__file__).parent.parent / "services" / "memory" / "migrations")
        hnsw = PgvectorIndex(pool, DIM)
        await hnsw.ensure()  # the column and the index, on the empty table
        vecs, owners = corpus(n)
        # a bulk load as an upgrade does it: rows first, then the HNSW index built once (as ``ensure`` does on a
        # table that has rows), instead of the index maintained row by row
        async with pool.connection() as conn:
            indexdef = (await (await conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'vectors_embedding_hnsw' "
                "AND schemaname = current_schema()")).fetchone())[0]
            await conn.execute("DROP INDEX vectors_embedding_hnsw")
        fill_s = await fill(pool, vecs, owners, hnsw._vector)  # noqa: SLF001 - the qualified type ensure found
        t0 = time.monotonic()
        async with pool.connection() as conn:
            await conn.execute("SET maintenance_work_mem = '2GB'")
            await conn.execute("SET max_parallel_maintenance_workers = 2")
            await conn.execute(indexdef)
        index_s = time.monotonic() - t0
        async with pool.connection() as conn:
            await conn.execute("ANALYZE vectors")  # as autovacuum would after a bulk load: the planner's row counts
            ids = [r[0] for r in await (await conn.execute("SELECT id FROM vectors ORDER BY seq")).fetchall()]
            size = (await (await conn.execute("SELECT pg_relation_size('vectors_embedding_hnsw')")).fetchone())[0]
        id_of = {pid: i for i, pid in enumerate(ids)}
        rng = np.random.default_rng(5)
        picks = rng.integers(0, n, samples)
        # a question near something said (the noise is 0.3 of a unit vector's length, not per dimension)
        queries = vecs[picks] + rng.normal(scale=0.3 / np.sqrt(DIM), size=(samples, DIM)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        rows: list[dict[str, Any]] = []
        for scope_name in ("tenant", "user"):
            scopes = [Scope("acme") if scope_name == "tenant" else Scope("acme", owner=f"u{owners[p]}")
                      for p in picks]
            truth = []
            for q, p in zip(queries, picks, strict=True):
                mask = np.ones(n, bool) if scope_name == "tenant" else owners == owners[p]
                scores = np.where(mask, vecs @ q, -np.inf)
                truth.append(set(np.argsort(-scores)[:10].tolist()))
            in_process = InProcessVectorIndex(pool, DIM, max_per_tenant=max_per_tenant, refresh_s=3600)
            for name, store in (("pgvector", hnsw), ("in_process", in_process)):
                row = await time_store(name, store, queries, scopes, truth, id_of, pgdata)
                rows.append({"vectors": n, "scope": scope_name, **row, "fill_s": round(fill_s, 1),
                             "index_s": round(index_s, 1), "hnsw_mb": round(size / 2**20, 1)})
                print(f"bench-recall: {rows[-1]}", flush=True)
            await in_process.aclose()
        await hnsw.aclose()
        return rows
    finally:
        async with pool.connection() as conn:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await pool.close()


async def main(sizes: list[int], samples: int, max_per_tenant: int) -> list[dict[str, Any]]:
    home = Path(tempfile.mkdtemp(prefix="agentbus-bench-recall-"))
    for k in ("AGENTBUS_KAFKA_BOOTSTRAP_SERVERS", "AGENTBUS_DATABASE_URL", "AGENTBUS_EMBEDDINGS_URL"):
        os.environ.pop(k, None)
    stack = Stack(home=home, config_file=home / "unused.yaml", ports=Ports.free(), echo=False,
                  env={"AGENTBUS_EMBEDDINGS_URL": ""}, archive_log=False)
    env = await stack.start_infra()
    try:
        s = Settings(database_url=env["AGENTBUS_DATABASE_URL"])
        rows: list[dict[str, Any]] = []
        for n in sizes:
            rows += await one_size(s, f"recall_{n}", n, samples, home / "pgdata", max_per_tenant)
        return rows
    finally:
        await stack.stop()


def table(rows: list[dict[str, Any]]) -> str:
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    lines = ["  ".join(f"{k:<{widths[k]}}" for k in keys)]
    lines += ["  ".join(f"{r[k]!s:<{widths[k]}}" for k in keys) for r in rows]
    return "\n".join(lines)


def run(sizes: list[int], samples: int = 200, max_per_tenant: int = 20_000) -> list[dict[str, Any]]:
    rows = asyncio.run(main(sizes, samples, max_per_tenant))
    print(table(rows))
    out = Path(__file__).parent / "results" / f"recall-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print(f"written to {out}")
    return rows


def cli() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vectors", default="10000,100000", help="comma-separated sizes (1000000 takes a while)")
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--max-per-tenant", type=int, default=20_000, help="the in-process index's cap")
    a = ap.parse_args()
    run([int(x) for x in a.vectors.split(",") if x.strip()], a.samples, a.max_per_tenant)


if __name__ == "__main__":
    cli()
