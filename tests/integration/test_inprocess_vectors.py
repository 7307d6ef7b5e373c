"""The embedded stack's vector store against the real PostgreSQL: recall, tenant isolation, durability
across restarts, the per-tenant cap, and a second replica seeing the first one's writes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import numpy as np
import pytest
from psycopg_pool import AsyncConnectionPool

from agentbus.services.memory.inprocessvectors import InProcessVectorIndex
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


def axis(i: int, scale: float = 1.0) -> list[float]:
    v = [0.0] * DIM
    v[i] = scale
    return v


async def put(index: InProcessVectorIndex, vector: list[float], scope: Scope, text: str) -> uuid.UUID:
    pid = uuid.uuid4()
    await index.upsert(pid, vector, scope, f"{scope.tenant}/c", "user", text, datetime.now(UTC))
    return pid


async def test_recall_is_ranked_by_cosine_and_excludes_the_asking_turn(pool: AsyncConnectionPool) -> None:
    index = InProcessVectorIndex(pool, DIM)
    await index.search(axis(0), ACME, 3)  # loads the (empty) tenant
    await put(index, axis(0, 5.0), ACME, "exact")
    await put(index, [1.0, 1.0] + [0.0] * (DIM - 2), ACME, "diagonal")
    await put(index, axis(1), ACME, "orthogonal")
    asking = await put(index, axis(0, 2.0), ACME, "the question itself")
    found = await index.search(axis(0), ACME, 2, exclude={asking})
    assert [r.text for r in found] == ["exact", "diagonal"]
    assert found[0].score == pytest.approx(1.0, abs=1e-6)
    assert found[1].score == pytest.approx(float(np.sqrt(0.5)), abs=1e-6)
    assert found[0].conversation == "acme/c" and found[0].role == "user"


async def test_tenants_never_see_each_other(pool: AsyncConnectionPool) -> None:
    index = InProcessVectorIndex(pool, DIM)
    await put(index, axis(2), ACME, "acme secret")
    await put(index, axis(2), GLOBEX, "globex secret")
    assert [r.text for r in await index.search(axis(2), ACME, 5)] == ["acme secret"]
    assert [r.text for r in await index.search(axis(2), GLOBEX, 5)] == ["globex secret"]


async def test_vectors_survive_a_restart(pool: AsyncConnectionPool) -> None:
    first = InProcessVectorIndex(pool, DIM)
    await asyncio.gather(*(put(first, axis(i % DIM, 1.0 + i), ACME, f"t{i}") for i in range(20)))
    await first.aclose()
    second = InProcessVectorIndex(pool, DIM)
    found = await second.search(axis(3), ACME, 10)
    assert {r.text for r in found} >= {"t3", "t11", "t19"}
    assert second.size("acme") == 20


async def test_only_the_newest_vectors_per_tenant_are_searched(pool: AsyncConnectionPool) -> None:
    index = InProcessVectorIndex(pool, DIM, max_per_tenant=4)
    await index.search(axis(0), ACME, 1)
    for i in range(6):
        await put(index, axis(i), ACME, f"t{i}")
    assert index.size("acme") == 4
    assert {r.text for r in await index.search(axis(0), ACME, 10)} == {"t2", "t3", "t4", "t5"}
    assert (await index.search(axis(5), ACME, 1))[0].text == "t5"
    reloaded = InProcessVectorIndex(pool, DIM, max_per_tenant=4)  # a restart loads the same newest four
    assert {r.text for r in await reloaded.search(axis(0), ACME, 10)} == {"t2", "t3", "t4", "t5"}


async def test_a_second_replica_sees_the_first_ones_writes(pool: AsyncConnectionPool) -> None:
    a = InProcessVectorIndex(pool, DIM, refresh_s=0.0)
    b = InProcessVectorIndex(pool, DIM, refresh_s=0.0)
    await a.search(axis(0), ACME, 1)
    await b.search(axis(0), ACME, 1)
    await put(a, axis(4), ACME, "written by a")
    await put(b, axis(5), ACME, "written by b")
    assert [r.text for r in await b.search(axis(4), ACME, 1)] == ["written by a"]
    assert [r.text for r in await a.search(axis(5), ACME, 1)] == ["written by b"]
    assert a.size("acme") == b.size("acme") == 2


async def test_a_repeated_upsert_is_stored_once(pool: AsyncConnectionPool) -> None:
    index = InProcessVectorIndex(pool, DIM)
    await index.search(axis(0), ACME, 1)
    pid = uuid.uuid4()
    for _ in range(2):
        await index.upsert(pid, axis(6), ACME, "acme/c", "user", "once", datetime.now(UTC))
    assert index.size("acme") == 1
    async with pool.connection() as conn:
        assert (await (await conn.execute("SELECT count(*) FROM vectors")).fetchone()) == (1,)


async def test_searches_waiting_together_each_get_their_own_answer(pool: AsyncConnectionPool) -> None:
    index = InProcessVectorIndex(pool, DIM)
    ids = [await put(index, axis(i), ACME, f"t{i}") for i in range(DIM)]
    answers = await asyncio.gather(
        index.search(axis(1), ACME, 1),
        index.search(axis(1), ACME, 1, exclude={ids[1]}),
        index.search(axis(6), ACME, 2),
        index.search(axis(6), ACME, 0),
    )
    assert [[r.text for r in a] for a in answers][0] == ["t1"]
    assert answers[1][0].text != "t1" and answers[1][0].score == pytest.approx(0.0, abs=1e-6)
    assert answers[2][0].text == "t6" and len(answers[2]) == 2
    assert answers[3] == []


async def test_refreshes_never_bring_back_what_the_cap_evicted(pool: AsyncConnectionPool) -> None:
    other = InProcessVectorIndex(pool, DIM)
    me = InProcessVectorIndex(pool, DIM, max_per_tenant=2, refresh_s=0.0)
    await me.search(axis(0), ACME, 1)
    await put(other, axis(0), ACME, "old 0")
    await put(other, axis(1), ACME, "old 1")
    await me.search(axis(0), ACME, 1)  # picks up the other replica's two
    await put(me, axis(2), ACME, "mine, newest")  # evicts "old 0"
    for _ in range(3):  # each refresh reads the other replica's rows again inside its margin
        assert {r.text for r in await me.search(axis(0), ACME, 5)} == {"old 1", "mine, newest"}


async def test_the_scope_is_filtered_in_the_scan_and_origins_survive_a_restart(pool: AsyncConnectionPool) -> None:
    index = InProcessVectorIndex(pool, DIM)
    now = datetime.now(UTC)
    for i in range(50):  # others' memories, all closer to the query than alice's
        await index.upsert(uuid.uuid4(), axis(0), ACME, f"acme/c{i}", "user", f"other {i}", now,
                           origin=Origin(owner=f"u{i}", chat_type="direct"))
    mine = uuid.uuid4()
    await index.upsert(mine, [1.0, 1.0] + [0.0] * (DIM - 2), ACME, "acme/a1", "user", "my locker code is 4417", now,
                       origin=Origin(owner="alice", sender="alice", sender_name="Alice", channel="acme", chat="a1",
                                     chat_name="alice", chat_type="direct"))
    await index.upsert(uuid.uuid4(), axis(0), ACME, "acme/old", "user", "stored before owners", now)
    for searcher in (index, InProcessVectorIndex(pool, DIM)):  # this replica, and one that loads from the table
        [found] = await searcher.search(axis(0), Scope("acme", owner="alice"), 3)
        assert (found.text, found.event_id, found.sender, found.sender_name, found.chat, found.chat_type) == (
            "my locker code is 4417", mine, "alice", "Alice", "a1", "direct")
        assert await searcher.search(axis(0), Scope("acme", owner="alice", group_only=True), 3) == []
        assert await searcher.search(axis(0), Scope("acme", owner="bob"), 3) == []
        assert [r.text for r in await searcher.search(axis(0), Scope("acme", conversation="acme/old"), 3)] == [
            "stored before owners"]


async def test_a_memory_is_listed_found_and_deleted_by_id_for_every_replica(pool: AsyncConnectionPool) -> None:
    one, two = InProcessVectorIndex(pool, DIM, refresh_s=0.0), InProcessVectorIndex(pool, DIM, refresh_s=0.0)
    first = await put(one, axis(3), ACME, "first")
    second = await put(one, axis(4), ACME, "second")
    theirs = await put(one, axis(3), GLOBEX, "globex's")
    listed = await two.memories("acme", "acme/c", 10)
    assert [(r.event_id, r.text, r.score) for r in listed] == [(second, "second", 0.0), (first, "first", 0.0)]
    assert [r.text for r in await two.memories("acme", "acme/c", 1)] == ["second"]
    assert await two.memories("acme", "acme/elsewhere", 10) == []
    assert [r.text for r in await two.find("acme", [first, theirs])] == ["first"]
    assert [r.text for r in await two.search(axis(3), ACME, 1)] == ["first"]  # in the second replica's matrix
    assert await one.delete("acme", [theirs]) == []  # another tenant's id deletes nothing
    assert await one.delete("acme", [first]) == [first]
    assert await one.delete("acme", [first]) == []
    assert [r.text for r in await two.search(axis(3), ACME, 1)] == ["second"]  # dropped by its refresh
    await one.upsert(first, axis(3), ACME, "acme/c", "user", "first", datetime.now(UTC))  # a redelivered turn
    assert [r.text for r in await one.memories("acme", "acme/c", 10)] == ["second"]  # stays forgotten
    assert [r.text for r in await one.find("globex", [theirs])] == ["globex's"]
    await one.aclose()
    await two.aclose()
