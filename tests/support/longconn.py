"""What the unit tests of every long connection share: a ``deliver`` that records, and how a session ended.

A long connection (Slack Socket Mode, DingTalk Stream, Feishu's event WebSocket, Telegram getUpdates) hands
each platform event to ``deliver`` and acknowledges it only after that returned; these tests drive a
connection against a fake gateway and check what was delivered and acknowledged.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from agentbus.services.ingress.accept import Outcome
from agentbus.services.ingress.inbound import Inbound


class Recorder:
    """A ``deliver`` that records what it got; ``fail`` makes the next calls raise; ``during`` runs inside."""

    def __init__(self) -> None:
        self.got: list[Inbound] = []
        self.fail = 0
        self.during: Callable[[Inbound], Awaitable[None]] | None = None

    async def __call__(self, inbound: Inbound) -> Outcome:
        if self.during is not None:
            await self.during(inbound)
        if self.fail:
            self.fail -= 1
            raise ConnectionError("broker unavailable")
        self.got.append(inbound)
        return Outcome("published", uuid.uuid4())


async def finished(task: asyncio.Task[None]) -> BaseException | None:
    """How ``run`` ended: None when it returned, else its exception."""
    await asyncio.wait({task}, timeout=30)
    assert task.done(), "run did not end"
    return task.exception()


async def stop(task: asyncio.Task[None]) -> None:
    """Cancel a session and wait until it is over."""
    task.cancel()
    await asyncio.wait({task}, timeout=30)
    assert task.done()
