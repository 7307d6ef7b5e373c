"""Per-partition low watermark: the next offset safe to commit given out-of-order completion."""

from __future__ import annotations

import heapq


class Watermark:
    def __init__(self) -> None:
        self._pending: list[int] = []  # min-heap of offsets received and not finished
        self._finished: set[int] = set()
        self._max_seen = -1
        self.committed: int | None = None  # last offset handed out for commit

    def add(self, offset: int) -> bool:
        if offset <= self._max_seen:
            return False
        self._max_seen = offset
        heapq.heappush(self._pending, offset)
        return True

    def done(self, offset: int) -> None:
        self._finished.add(offset)
        while self._pending and self._pending[0] in self._finished:
            self._finished.discard(heapq.heappop(self._pending))

    @property
    def pending(self) -> int:
        return len(self._pending)

    def low(self) -> int | None:
        """The offset to commit: the first unfinished one, or one past the last seen."""
        if self._max_seen < 0:
            return None
        return self._pending[0] if self._pending else self._max_seen + 1

    def take_commit(self) -> int | None:
        wm = self.low()
        if wm is None or wm == self.committed:
            return None
        self.committed = wm
        return wm

    def uncommit(self, offset: int) -> None:
        if self.committed == offset:
            self.committed = None
