"""Backoff shared by every retry loop of the kernel (all of them run on tenacity).

The wait doubles from ``initial`` up to ``cap`` and is multiplied by a random factor in [0.5, 1.5): replicas
and events that failed together do not retry in step, and the average wait stays the nominal one (tenacity's
own ``wait_exponential_jitter`` adds jitter instead of scaling, so its average drifts above the nominal
wait by half the jitter).
"""

from __future__ import annotations

import random

from tenacity import RetryCallState
from tenacity.wait import wait_base


class jittered(wait_base):  # noqa: N801 - named like tenacity's own wait strategies
    def __init__(self, initial: float, cap: float) -> None:
        self.initial = initial
        self.cap = cap

    def nominal(self, attempt_number: int) -> float:
        """The wait before try ``attempt_number + 1``, without jitter."""
        return min(self.initial * 2 ** max(attempt_number - 1, 0), self.cap)

    def __call__(self, retry_state: RetryCallState) -> float:
        return self.nominal(retry_state.attempt_number) * (0.5 + random.random())


def failure(retry_state: RetryCallState) -> BaseException:
    """The exception of the try that just failed."""
    assert retry_state.outcome is not None and retry_state.outcome.failed
    exc = retry_state.outcome.exception()
    assert exc is not None
    return exc
