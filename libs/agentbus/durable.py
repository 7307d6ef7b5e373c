"""Recording an external effect that has already happened.

A handler that called the LLM or pushed a reply must record that before anything else may retry it: if the
write fails on a transient error (the database restarting) and the whole handler were retried, the retry
could not know the call was made and would make it again. So that write alone is retried, with the
completed result kept in memory, until it succeeds (or the deadline passes, which only a long outage does).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_delay

from agentbus.bus.errors import PermanentError, is_transient
from agentbus.retrying import failure, jittered

T = TypeVar("T")
log = structlog.get_logger("agentbus.durable")


def _worth_retrying(exc: BaseException) -> bool:
    return not isinstance(exc, PermanentError) and is_transient(exc)


async def until_recorded(
    write: Callable[[], Awaitable[T]], *, what: str, deadline_s: float = 900.0, initial_s: float = 0.1,
    max_s: float = 5.0,
) -> T:
    def report(rs: RetryCallState) -> None:
        exc = failure(rs)
        log.warning("record_retry", what=what, error=f"{type(exc).__name__}: {exc}"[:300],
                    delay_s=round(rs.upcoming_sleep, 2))

    try:  # the first write outside tenacity: it nearly always succeeds, and a retry loop costs ~40 us to set up
        return await write()
    except Exception as exc:
        if not _worth_retrying(exc):
            raise
        delay = initial_s * (0.5 + random.random())
        log.warning("record_retry", what=what, error=f"{type(exc).__name__}: {exc}"[:300], delay_s=round(delay, 2))
    await asyncio.sleep(delay)
    async for attempt in AsyncRetrying(retry=retry_if_exception(_worth_retrying), stop=stop_after_delay(deadline_s),
                                       wait=jittered(initial_s * 2, max_s), before_sleep=report, reraise=True):
        with attempt:
            return await write()
    raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover
