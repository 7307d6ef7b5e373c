"""Egress's rate limiter: a token bucket per target, kept in this process.

Platforms publish their limits per chat, robot or webhook (``Outbound.rate_for``); waiting here before a
push keeps a busy chat from earning 429s that would use up its retry attempts.
"""

from __future__ import annotations

import asyncio
import time


class TokenBuckets:
    """``per_minute`` pushes per target, bursting up to the same number."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def acquire(self, target: str, per_minute: int | None) -> None:
        if not per_minute:
            return
        lock = self._locks.setdefault(target, asyncio.Lock())
        async with lock:
            rate = per_minute / 60.0
            while True:
                tokens, stamp = self._buckets.get(target, (float(per_minute), time.monotonic()))
                now = time.monotonic()
                tokens = min(float(per_minute), tokens + (now - stamp) * rate)
                if tokens >= 1:
                    self._buckets[target] = (tokens - 1, now)
                    return
                self._buckets[target] = (tokens, now)
                await asyncio.sleep((1 - tokens) / rate)
