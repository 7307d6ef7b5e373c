"""Progress of one answer: reply.progress events that show the chat the agent is working on it.

Published at once (not with the answer's outputs, which wait for the whole answer), and best effort: a
progress event that cannot be published costs a typing indicator, never the answer, so a failure is logged
and the answer goes on. ``working`` goes out before each model call (typing indicators expire: Telegram's
after five seconds); with ``progress: stream`` the answer so far goes out as ``partial``, at most once per
interval. Ids are derived from the input and the sequence number, so a redelivered input that streams again
publishes the same ids.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, Protocol

import structlog

from agentbus.events import ContextAssembled, ReplyProgress, ReplyProgressData

log = structlog.get_logger("agentbus.reasoner")
SOURCE = "reasoner"


class ProgressSink(Protocol):
    async def publish(self, event: ReplyProgress) -> None: ...


@dataclass
class Reporter:
    """The progress of answering ``event``; ``mode`` is the channel's ``progress`` setting."""

    event: ContextAssembled
    sink: ProgressSink
    mode: Literal["typing", "stream"]
    interval_s: float = 1.0
    seq: int = 0
    streamed: bool = False  # a partial went out: the reply edits that message
    _last_partial: float = float("-inf")
    _last_text: str = ""

    @property
    def streams(self) -> bool:
        return self.mode == "stream"

    async def working(self) -> None:
        await self._publish("working", "")

    async def partial(self, text: str) -> None:
        """The answer so far; sent when the interval since the last one has passed and it grew."""
        now = time.monotonic()
        if not text.strip() or text == self._last_text or now - self._last_partial < self.interval_s:
            return
        self._last_partial, self._last_text = now, text
        if await self._publish("partial", text):
            self.streamed = True

    async def _publish(self, stage: Literal["working", "partial"], text: str) -> bool:
        ctx = self.event.data
        seq, self.seq = self.seq, self.seq + 1
        progress = self.event.follow(ReplyProgress, ReplyProgressData(
            agent=ctx.agent, channel=ctx.channel, channel_type=ctx.channel_type, chat=ctx.chat,
            reply_route=ctx.reply_route, in_reply_to=ctx.in_reply_to, stage=stage, seq=seq, text=text,
            asker=ctx.asker,
        ), source=SOURCE, step=f"progress-{seq}")
        try:
            await self.sink.publish(progress)
        except Exception as exc:  # best effort by contract: the answer must not wait on its progress
            log.warning("progress_not_published", stage=stage, seq=seq, error=f"{type(exc).__name__}: {exc}"[:200])
            return False
        return True
