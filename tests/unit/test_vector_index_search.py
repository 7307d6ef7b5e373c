"""The in-process index's batched search agrees with a plain per-query ranking."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime

import numpy as np
import pytest

from agentbus.services.memory.ports import Origin, Scope
from agentbus.services.memory.vectorring import TenantIndex, unit

ALL = Scope("acme")


def _filled(n: int, dim: int, capacity: int, seed: int = 7) -> tuple[TenantIndex, list[uuid.UUID], np.ndarray]:
    rng = np.random.default_rng(seed)
    idx = TenantIndex(capacity, dim)
    ids = [uuid.uuid4() for _ in range(n)]
    vectors = np.stack([unit(v) for v in rng.normal(size=(n, dim)).astype(np.float32)])
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for i, (point_id, v) in enumerate(zip(ids, vectors, strict=True)):
        idx.add((point_id, f"c{i}", "user", f"text {i}", at, "turn", Origin(), v))
    return idx, ids, vectors


def _expected(vectors: np.ndarray, ids: list[uuid.UUID], query: np.ndarray, limit: int,
              exclude: uuid.UUID | None, first: int = 0) -> list[str]:
    scores = vectors[first:] @ query
    order = [first + int(i) for i in np.argsort(-scores) if exclude is None or ids[first + int(i)] != exclude]
    return [f"text {i}" for i in order[:limit]]


@pytest.mark.parametrize("n", [1, 3, 50, 700])
def test_batched_search_matches_ranking_each_query_alone(n: int) -> None:
    dim = 16
    idx, ids, vectors = _filled(n, dim, capacity=1000)
    rng = np.random.default_rng(n)
    queries = np.stack([unit(q) for q in rng.normal(size=(5, dim)).astype(np.float32)])
    asks = [(3, None), (1, ids[0]), (0, None), (10, ids[-1]), (3, uuid.uuid4())]
    results = idx.search(queries, [(k, () if x is None else {x}, ALL) for k, x in asks])
    assert len(results) == len(asks)
    for q, (limit, exclude), found in zip(queries, asks, results, strict=True):
        assert [r.text for r in found] == _expected(vectors, ids, q, limit, exclude)
        assert all(a.score >= b.score for a, b in itertools.pairwise(found))
        assert all(r.text != f"text {ids.index(exclude)}" for r in found if exclude in ids)


def test_only_the_ring_is_searched_after_the_cap() -> None:
    idx, ids, vectors = _filled(30, 8, capacity=10)
    q = vectors[5]  # evicted: the newest ten are 20..29
    [found] = idx.search(q[None, :], [(10, (), ALL)])
    assert sorted(r.text for r in found) == sorted(f"text {i}" for i in range(20, 30))
    assert [r.text for r in found] == _expected(vectors, ids, q, 10, None, first=20)


def test_a_removed_vector_is_never_found_and_takes_no_place_in_the_best_k() -> None:
    idx, ids, vectors = _filled(20, 8, capacity=50)
    q = vectors[3]
    idx.remove(ids[3])
    idx.remove(ids[3])  # a tombstone read twice
    [found] = idx.search(q[None, :], [(19, (), ALL)])
    assert "text 3" not in [r.text for r in found] and len(found) == 19
    assert idx.size == 19
    kept = [i for i in range(20) if i != 3]
    assert [r.text for r in found] == [t for t in _expected(vectors, ids, q, 20, None) if t != "text 3"]
    assert sorted(int(r.text.split()[1]) for r in found) == kept


def test_a_scope_is_applied_inside_the_scan_so_a_narrow_one_still_gets_its_best_k() -> None:
    """Alice's three memories among 200 of others that match the query better: a top k thinned out afterwards
    would come back empty; the mask inside the scan finds hers."""
    dim = 8
    idx = TenantIndex(1000, dim)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    query = unit(np.ones(dim, dtype=np.float32))
    rng = np.random.default_rng(3)
    for i in range(200):
        v = unit(np.ones(dim, dtype=np.float32) + rng.normal(scale=0.01, size=dim).astype(np.float32))
        idx.add((uuid.uuid4(), f"acme/acme/c{i}", "user", f"other {i}", at, "turn",
                 Origin(owner=f"u{i}", chat_type="group" if i % 2 else "direct"), v))
    alice = [uuid.uuid4() for _ in range(3)]
    for n, (point_id, chat_type) in enumerate(zip(alice, ("direct", "group", "direct"), strict=True)):
        v = unit(np.eye(dim, dtype=np.float32)[n] + 0.1)
        idx.add((point_id, f"acme/acme/a{n}", "user", f"alice {n}", at, "turn",
                 Origin(owner="alice", sender="alice", chat_type=chat_type), v))  # type: ignore[arg-type]
    idx.add((uuid.uuid4(), "acme/acme/old", "user", "stored before owners", at, "turn", Origin(), query))
    mine, group, conv, nobody, everyone = idx.search(np.stack([query] * 5), [
        (3, (), Scope("acme", owner="alice")),
        (3, (), Scope("acme", owner="alice", group_only=True)),
        (3, {alice[0]}, Scope("acme", conversation="acme/acme/a0")),
        (3, (), Scope("acme", owner="mallory")),
        (3, (), Scope("acme")),
    ])
    assert sorted(r.text for r in mine) == ["alice 0", "alice 1", "alice 2"]
    assert all(r.sender == "alice" for r in mine)
    assert [r.text for r in group] == ["alice 1"]
    assert conv == [] and nobody == []  # left out by id; an owner never stored matches nothing
    assert everyone[0].text == "stored before owners"  # only a tenant-wide search finds an owner-less vector
