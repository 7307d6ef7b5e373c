"""The Qdrant vector store (production's) through qdrant-client's in-process mode, which serves the same API
as a Qdrant server: per-tenant collections, batched upserts, ranked recall without the asking turn, and
forgetting what is alike above a threshold, in one tenant only."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from agentbus.services.memory.ports import Origin, Scope
from agentbus.services.memory.vectors import QdrantStore

ACME, GLOBEX = Scope("acme"), Scope("globex")


async def test_recall_per_tenant_ranked_without_the_asking_turn() -> None:
    store = QdrantStore.connect(None, None, None, "test_memory", 4)
    await store.ensure()
    now = datetime.now(UTC)
    asking = uuid.uuid4()
    await asyncio.gather(
        store.upsert(uuid.uuid4(), [1.0, 0.0, 0.0, 0.0], ACME, "acme/c", "user", "exact", now),
        store.upsert(uuid.uuid4(), [1.0, 1.0, 0.0, 0.0], ACME, "acme/c", "assistant", "diagonal", now),
        store.upsert(asking, [2.0, 0.0, 0.0, 0.0], ACME, "acme/c", "user", "the question", now),
        store.upsert(uuid.uuid4(), [1.0, 0.0, 0.0, 0.0], GLOBEX, "globex/c", "user", "globex secret", now),
    )
    found = await store.search([1.0, 0.0, 0.0, 0.0], ACME, 2, exclude={asking})
    assert [r.text for r in found] == ["exact", "diagonal"]
    assert found[1].role == "assistant" and found[1].conversation == "acme/c"
    assert [r.text for r in await store.search([1.0, 0.0, 0.0, 0.0], GLOBEX, 5)] == ["globex secret"]
    await store.aclose()


async def test_forget_deletes_only_what_is_alike_above_the_threshold_in_the_tenant() -> None:
    store = QdrantStore.connect(None, None, None, "test_forget", 4)
    now = datetime.now(UTC)
    locker, near, far, other = (uuid.uuid4() for _ in range(4))
    await asyncio.gather(
        store.upsert(locker, [1.0, 0.0, 0.0, 0.0], ACME, "acme/c", "user", "my locker is 12", now, "fact", "u1"),
        store.upsert(near, [0.95, 0.05, 0.0, 0.0], ACME, "acme/c", "user", "locker 12, level 2", now),
        store.upsert(far, [0.0, 1.0, 0.0, 0.0], ACME, "acme/c", "user", "the offsite is in May", now),
        store.upsert(other, [1.0, 0.0, 0.0, 0.0], GLOBEX, "globex/c", "user", "globex locker", now),
    )
    [top] = await store.search([1.0, 0.0, 0.0, 0.0], ACME, 1)
    assert (top.text, top.kind) == ("my locker is 12", "fact")
    assert sorted(await store.forget([1.0, 0.0, 0.0, 0.0], ACME, 0.9)) == sorted([locker, near])
    assert [r.text for r in await store.search([1.0, 0.0, 0.0, 0.0], ACME, 5)] == ["the offsite is in May"]
    [kept] = await store.search([1.0, 0.0, 0.0, 0.0], GLOBEX, 5)
    assert kept.text == "globex locker" and kept.kind == "turn"
    assert await store.forget([1.0, 0.0, 0.0, 0.0], ACME, 0.9) == []
    await store.aclose()


async def test_the_scope_is_a_payload_filter_so_a_narrow_one_still_gets_its_best_k() -> None:
    store = QdrantStore.connect(None, None, None, "test_scope", 4)
    now = datetime.now(UTC)
    close = [1.0, 0.0, 0.0, 0.0]
    await asyncio.gather(*(
        store.upsert(uuid.uuid4(), close, ACME, f"acme/c{i}", "user", f"other {i}", now,
                     origin=Origin(owner=f"u{i}", chat_type="direct")) for i in range(30)))
    alice = [uuid.uuid4() for _ in range(3)]
    for n, (point_id, chat_type) in enumerate(zip(alice, ("direct", "group", "direct"), strict=True)):
        await store.upsert(point_id, [0.5, 0.5 + n, 0.0, 0.0], ACME, f"acme/a{n}", "user", f"alice {n}", now,
                           origin=Origin(owner="alice", sender="alice", sender_name="Alice", channel="acme",
                                         chat=f"a{n}", chat_type=chat_type))  # type: ignore[arg-type]
    await store.upsert(uuid.uuid4(), close, ACME, "acme/old", "user", "stored before owners", now)
    mine = await store.search(close, Scope("acme", owner="alice"), 3)
    assert sorted(r.text for r in mine) == ["alice 0", "alice 1", "alice 2"]
    assert {(r.sender, r.sender_name, r.channel) for r in mine} == {("alice", "Alice", "acme")}
    assert {r.event_id for r in mine} == set(alice)
    assert [r.text for r in await store.search(close, Scope("acme", owner="alice", group_only=True), 3)] == [
        "alice 1"]
    assert [r.text for r in await store.search(close, Scope("acme", conversation="acme/a2"), 3)] == ["alice 2"]
    assert await store.search(close, Scope("acme", conversation="acme/a2"), 3, exclude={alice[2]}) == []
    assert await store.search(close, Scope("acme", owner="mallory"), 3) == []
    assert "stored before owners" in [r.text for r in await store.search(close, ACME, 40)]
    await store.aclose()



async def test_a_conversations_memories_are_listed_found_and_deleted_by_id_in_the_tenant_only() -> None:
    store = QdrantStore.connect(None, None, None, "test_by_id", 4)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    old, new, elsewhere, theirs = (uuid.uuid4() for _ in range(4))
    await asyncio.gather(
        store.upsert(old, [1.0, 0.0, 0.0, 0.0], ACME, "acme/c", "user", "first", t0),
        store.upsert(new, [0.0, 1.0, 0.0, 0.0], ACME, "acme/c", "assistant", "second", t0.replace(hour=1)),
        store.upsert(elsewhere, [1.0, 0.0, 0.0, 0.0], ACME, "acme/d", "user", "other chat", t0),
        store.upsert(theirs, [1.0, 0.0, 0.0, 0.0], GLOBEX, "globex/c", "user", "globex's", t0),
    )
    listed = await store.memories("acme", "acme/c", 10)
    assert [(r.event_id, r.text, r.score) for r in listed] == [(new, "second", 0.0), (old, "first", 0.0)]
    assert [r.text for r in await store.memories("acme", "acme/c", 1)] == ["second"]
    assert [r.text for r in await store.find("acme", [old, theirs])] == ["first"]  # not globex's
    assert await store.delete("acme", [theirs]) == []
    assert await store.delete("acme", [old]) == [old]
    assert await store.delete("acme", [old]) == []  # gone: nothing the second time
    assert [r.text for r in await store.memories("acme", "acme/c", 10)] == ["second"]
    assert [r.text for r in await store.find("globex", [theirs])] == ["globex's"]


async def test_erase_deletes_every_memory_of_a_person_in_the_tenant_only() -> None:
    store = QdrantStore.connect(None, None, None, "test_erase", 4)
    now = datetime.now(UTC)
    ids = {name: uuid.uuid4() for name in ("turn", "reply", "fact", "unowned", "bobs", "globex", "agent")}
    v = [1.0, 0.0, 0.0, 0.0]
    await asyncio.gather(
        store.upsert(ids["turn"], v, ACME, "acme/c", "user", "my locker is 12", now, origin=Origin("u1", "u1")),
        store.upsert(ids["reply"], v, ACME, "acme/c", "assistant", "noted: 12", now, origin=Origin("u1", "bot")),
        store.upsert(ids["fact"], v, ACME, "acme/c", "user", "u1's locker is 12", now, "fact", "u1",
                     Origin("u1", "u1")),
        store.upsert(ids["unowned"], v, ACME, "acme/c", "user", "older: 12", now, origin=Origin(sender="u1")),
        store.upsert(ids["bobs"], v, ACME, "acme/c", "user", "bob's bike", now, origin=Origin("u2", "u2")),
        store.upsert(ids["agent"], v, ACME, "acme/c", "assistant", "a reply without owner", now,
                     origin=Origin(sender="u1")),  # sender u1 but not a person's turn: kept
        store.upsert(ids["globex"], v, GLOBEX, "globex/c", "user", "globex u1", now, origin=Origin("u1", "u1")),
    )
    assert await store.erase("acme", "u1") == 4
    assert sorted(r.text for r in await store.search(v, ACME, 10)) == ["a reply without owner", "bob's bike"]
    assert [r.text for r in await store.search(v, GLOBEX, 10)] == ["globex u1"]
    assert await store.erase("acme", "u1") == 0 and await store.erase("nobody-here", "u1") == 0
    await store.aclose()
