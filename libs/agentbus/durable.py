"""Recording an external effect that has already happened.

A handler that called the LLM or pushed a reply must record that before anything else may retry it: if the
write fails on a transient error (the database restarting) and the whole handler were retried, the retry
could not know the call was made and would make it again. So that write alone is retried, with the
completed result kept in memory, until it succeeds (or the deadline passes, which only a long outage does).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from agentbus.bus.errors import PermanentError, is_transient

T = TypeVar("T")
log = structlog.get_logger("agentbus.durable")


async def until_recorded(
    write: Callable[[], Awaitable[T]], *, what: str, deadline_s: float = 900.0, initial_s: float = 0.1,
    max_s: float = 5.0,
) -> T:
    started = time.monotonic()
    delay = initial_s
    while True:
        try:
            return await write()
        except Exception as exc:
            if isinstance(exc, PermanentError) or not is_transient(exc) or time.monotonic() - started > deadline_s:
                raise
            log.warning("record_retry", what=what, error=f"{type(exc).__name__}: {exc}"[:300], delay_s=round(delay, 2))
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, max_s)
