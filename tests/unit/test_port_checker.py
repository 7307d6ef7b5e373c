"""The port checker itself: it must catch a missing method, other parameters, and a sync/async mix-up."""

from __future__ import annotations

from typing import Protocol

from tests.support.ports import assert_implements, mismatches


class Store(Protocol):
    name: str

    async def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None: ...

    async def get(self, key: str) -> bytes | None: ...


class Good:
    name = "good"

    async def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        return None

    async def get(self, key: str) -> bytes | None:
        return None


class Drifted:
    async def put(self, key: str, value: bytes, ttl: float | None = None) -> None:  # ttl is no longer keyword-only
        return None

    def get(self, key: str) -> bytes | None:  # not async
        return None


def test_an_implementation_that_matches_passes() -> None:
    assert_implements(Good, Store)


def test_drift_is_reported_member_by_member() -> None:
    problems = mismatches(Drifted, Store)
    assert any("no attribute 'name'" in p for p in problems)
    assert any("Drifted.put" in p and "differs" in p for p in problems)
    assert any("Drifted.get: async differs" in p for p in problems)
    assert len(problems) == 3
