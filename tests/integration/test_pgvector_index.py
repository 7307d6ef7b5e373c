"""Memory's vectors searched by pgvector's HNSW index, against the real PostgreSQL and its ``vector`` extension:
ranking, tenant isolation, a narrow scope among many better matches, no cap, replicas, tombstones, forgetting,
erasure, the upgrade from the in-process index, and a dimension that does not match."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import numpy as np
import pytest
from psycopg_pool import AsyncConnectionPool

from agentbus.services.memory.inprocessvectors import InProcessVectorIndex
from agentbus.services.memory.pgvectorindex import PgvectorIndex, PgvectorUnavailable, pgvector_available
from agentbus.services.memory.ports import Origin, Scope
from tests.support.db import service_pool
from tests.support.platform import Infra

pytestmark = pytest.mark.integration
DIM = 8
ACME, GLOBEX = Scope("acme"), Scope("globex")


@pytest.fixture
async def pool(infra: Infra) -> AsyncIterator[AsyncConnectionPool]:
    async with service_pool(infra.database_url, "memory") as p:
        yield p


async def index_on(pool: AsyncConnectionPool, dim: int = DIM) -> PgvectorIndex:
    index = PgvectorIndex(pool, dim)
    await index.ensure()
    return index


def axis(i: int, scale: float = 1.0) -> list[float]:
    v = [0.0] * DIM
    v[i] = scale
    return v


async def put(index: PgvectorIndex | InProcessVectorIndex, vector: list[float], scope: Scope, text: str,
              owner: str | None = None, conversation: str | None = None) -> uuid.UUID:
    pid = uuid.uuid4()
    await index.upsert(pid, vector, scope, conversation or f"{scope.tenant}/c", "user", text, datetime.now(UTC),
                       origin=Origin(owner=owner, sender=owner, chat_type="direct"))
    return pid


async def test_the_server_has_the_extension_and_the_index_is_hnsw(pool: AsyncConnectionPool) -> None:
    assert await pgvector_available(pool)
    await index_on(pool)
    async with pool.connection() as conn:
        row = await (await conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'vectors_embedding_hnsw' "
            "AND schemaname = current_schema()")).fetchone()
    assert row is not None and "USING hnsw" in row[0] and "vector_cosine_ops" in row[0]


async def test_recall_is_ranked_by_cosine_and_excludes_the_asking_turn(pool: AsyncConnectionPool) -> None:
    index = await index_on(pool)
    await put(index, axis(0, 5.0), ACME, "exact")
    await put(index, [1.0, 1.0] + [0.0] * (DIM - 2), ACME, "diagonal")
    await put(index, axis(1), ACME, "orthogonal")
    asking = await put(index, axis(0, 2.0), ACME, "the question itself")
    found = await index.search(axis(0), ACME, 2, exclude={asking})
    assert [r.text for r in found] == ["exact", "diagonal"]
    assert found[0].score == pytest.approx(1.0, abs=1e-5)
    assert found[1].score == pytest.approx(float(np.sqrt(0.5)), abs=1e-5)
    assert found[0].conversation == "acme/c" and found[0].role == "user"
    assert await index.search(axis(0), ACME, 0) == []


async def test_tenants_never_see_each_other(pool: AsyncConnectionPool) -> None:
    index = await index_on(pool)
    await put(index, axis(2), ACME, "acme secret")
    await put(index, axis(2), GLOBEX, "globex secret")
    assert [r.text for r in await index.search(axis(2), ACME, 5)] == ["acme secret"]
    assert [r.text for r in await index.search(axis(2), GLOBEX, 5)] == ["globex secret"]


async def test_a_narrow_scope_gets_its_own_best_among_many_better_matches(pool: AsyncConnectionPool) -> None:
    index = await index_on(pool)
    rng = np.random.default_rng(7)
    near = axis(0)
    # 1,500 memories of others, every one closer to the question than any of alice's
    others = [(np.array(near) + rng.normal(0, 0.05, DIM)).tolist() for _ in range(1500)]
    await asyncio.gather(*(put(index, v, ACME, f"other {i}", owner=f"u{i % 50}") for i, v in enumerate(others)))
    mine = [await put(index, [1.0, float(k + 1)] + [0.0] * (DIM - 2), ACME, f"alice {k}", owner="alice")
            for k in range(3)]
    found = await index.search(near, Scope("acme", owner="alice"), 5)
    assert [r.event_id for r in found] == mine  # all three, best (smallest angle to the query) first
    assert await index.search(near, Scope("acme", owner="alice", group_only=True), 5) == []
    assert await index.search(near, Scope("acme", owner="nobody"), 5) == []
    in_conversation = await index.search(near, Scope("acme", conversation="acme/c"), 20)
    assert len(in_conversation) == 20 and all(r.text.startswith("other") for r in in_conversation)


async def test_an_old_memory_is_found_however_many_came_after(pool: AsyncConnectionPool) -> None:
    """No cap: the in-process index keeps only the newest vectors of a tenant; here every one is searched."""
    index = await index_on(pool)
    old = await put(index, axis(7), ACME, "said long ago")
    rng = np.random.default_rng(3)
    newer = [(np.array(axis(1)) + rng.normal(0, 0.2, DIM)).tolist() for _ in range(800)]
    for start in range(0, len(newer), 200):
        await asyncio.gather(*(put(index, v, ACME, "newer") for v in newer[start:start + 200]))
    [found] = await index.search(axis(7), ACME, 1)
    assert found.event_id == old and found.text == "said long ago"


async def test_every_replica_sees_a_write_at_once_and_a_repeat_is_stored_once(pool: AsyncConnectionPool) -> None:
    a, b = await index_on(pool), await index_on(pool)
    written = await put(a, axis(4), ACME, "written by a")
    assert [r.event_id for r in await b.search(axis(4), ACME, 1)] == [written]
    await a.upsert(written, axis(4), ACME, "acme/c", "user", "written by a", datetime.now(UTC))
    async with pool.connection() as conn:
        assert (await (await conn.execute("SELECT count(*) FROM vectors")).fetchone()) == (1,)


async def test_forget_deletes_every_similar_vector_and_it_is_never_written_again(pool: AsyncConnectionPool) -> None:
    index = await index_on(pool)
    close = [await put(index, [1.0, 0.05 * k] + [0.0] * (DIM - 2), ACME, f"close {k}") for k in range(5)]
    far = await put(index, axis(3), ACME, "far")
    theirs = await put(index, axis(0), GLOBEX, "globex, same words")
    assert sorted(await index.forget(axis(0), ACME, 0.95)) == sorted(close)
    assert [r.event_id for r in await index.search(axis(0), ACME, 10)] == [far]
    assert [r.event_id for r in await index.search(axis(0), GLOBEX, 10)] == [theirs]
    await index.upsert(close[0], axis(0), ACME, "acme/c", "user", "close 0", datetime.now(UTC))  # redelivered
    assert [r.event_id for r in await index.search(axis(0), ACME, 10)] == [far]


async def test_a_person_is_erased_and_listed_memories_are_deleted_by_id(pool: AsyncConnectionPool) -> None:
    index = await index_on(pool)
    hers = [await put(index, axis(k), ACME, f"alice {k}", owner="alice") for k in range(3)]
    his = await put(index, axis(0), ACME, "bob", owner="bob")
    assert await index.erase("acme", "alice") == 3
    assert [r.event_id for r in await index.search(axis(0), ACME, 10)] == [his]
    assert await index.find("acme", hers) == []
    assert [r.text for r in await index.memories("acme", "acme/c", 10)] == ["bob"]
    assert await index.delete("globex", [his]) == []
    assert await index.delete("acme", [his]) == [his]
    assert await index.search(axis(0), ACME, 10) == []


async def test_vectors_the_in_process_index_wrote_are_searched_after_the_switch(pool: AsyncConnectionPool) -> None:
    before = InProcessVectorIndex(pool, DIM)
    ids = [await put(before, axis(i), ACME, f"t{i}") for i in range(DIM)]
    await before.aclose()
    after = await index_on(pool)  # adds the column and gives every older row its vector
    assert [r.event_id for r in await after.search(axis(5), ACME, 1)] == [ids[5]]
    newest = await put(after, axis(5, 3.0), ACME, "after the switch")
    back = InProcessVectorIndex(pool, DIM)  # switching back loses nothing either
    assert {r.event_id for r in await back.search(axis(5), ACME, 2)} == {ids[5], newest}


async def test_a_dimension_that_does_not_match_the_column_fails_the_start(pool: AsyncConnectionPool) -> None:
    await index_on(pool)
    with pytest.raises(PgvectorUnavailable, match="vector\\(8\\).*16-dimensional"):
        await index_on(pool, dim=16)


async def test_dropping_one_schema_leaves_the_extension_to_the_others(infra: Infra) -> None:
    async with service_pool(infra.database_url, "memory") as keep:
        index = await index_on(keep)
        async with service_pool(infra.database_url, "memory") as dropped:
            await index_on(dropped)
        await put(index, axis(6), ACME, "still here")
        assert [r.text for r in await index.search(axis(6), ACME, 1)] == ["still here"]
