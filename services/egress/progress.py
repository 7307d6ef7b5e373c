"""reply.progress shown in the chat: a typing indicator, or the answer so far in a message edited as it grows.

Best effort by contract: one attempt, never a retry, never a dead letter; whatever goes wrong is logged and
the event is done (a lost progress costs an indicator, never the reply). A progress older than one already
applied for the same message, or arriving after its reply went out, is dropped (the store decides, in one
statement). With ``progress: stream`` the first partial sends a message and its platform id is kept; later
partials edit it, and the final reply (``streamed``) edits it into the final text instead of sending a new
one. A reply whose stream left no message is sent as usual.

Which channels can do what is told by the methods their adapters have: ``typing`` (Telegram's
sendChatAction), ``mark_working`` / ``clear_working`` (an indicator that stays until it is taken away, such
as Feishu's reaction on the person's message: added once per reply, its id kept in the store, removed when
the reply goes out), ``post_partial`` / ``edit_partial`` / ``edit_final`` (Telegram editMessageText, Slack
chat.update, Feishu's card PATCH). Slack bots have no typing indicator, so ``progress: typing`` shows nothing
there.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import structlog

from agentbus.events import Event, ReplyGeneratedData, ReplyProgress, ReplyProgressData
from agentbus.replaying import effects_of
from agentbus.services.egress.channels.base import OutboundAdapter
from agentbus.services.egress.ports import Outbound, Pushed

log = structlog.get_logger("agentbus.egress")
TIMEOUT_S = 10.0  # one progress call may take this long; a slower platform just misses it
POLL_S = 0.1  # how often a final reply looks for the id of a first partial still being sent


@dataclass(frozen=True)
class Applied:
    message_id: str | None  # the message a stream is edited in, once its first partial sent one
    typing_id: str | None = None  # the working mark already shown for this reply (``Marking``)


@dataclass(frozen=True)
class Finished:
    message_id: str | None  # the streamed message, if one was sent
    posting_age_s: float | None  # seconds since a first partial began to be sent (None: none was)
    typing_id: str | None = None  # the working mark to take away now that the reply goes out


class ProgressStore(Protocol):
    async def advance(self, channel: str, in_reply_to: str, seq: int) -> Applied | None:
        """Applied when ``seq`` is the highest yet and the reply has not gone out; None: drop it."""
        ...

    async def posting(self, channel: str, in_reply_to: str) -> None:
        """A first partial is about to be sent (a final reply arriving meanwhile waits for its id)."""
        ...

    async def set_message(self, channel: str, in_reply_to: str, message_id: str) -> None: ...

    async def set_typing(self, channel: str, in_reply_to: str, typing_id: str) -> bool:
        """Keeps the working mark's id; True when the reply already went out (the mark is taken away now)."""
        ...

    async def finish(self, channel: str, in_reply_to: str) -> Finished:
        """The reply goes out: no more progress; the streamed message's id, if one was sent."""
        ...

    async def message(self, channel: str, in_reply_to: str) -> str | None:
        """The streamed message's id, as it is now."""
        ...


@runtime_checkable
class Typing(Protocol):
    async def typing(self, progress: ReplyProgressData) -> None: ...


@runtime_checkable
class Marking(Protocol):
    """An indicator that stays until taken away: shown once per reply, removed when the reply goes out."""

    async def mark_working(self, progress: ReplyProgressData) -> str: ...

    async def clear_working(self, reply_route: Mapping[str, Any], typing_id: str) -> None: ...


@runtime_checkable
class Editing(Protocol):
    async def post_partial(self, progress: ReplyProgressData) -> str: ...

    async def edit_partial(self, progress: ReplyProgressData, message_id: str) -> None: ...

    async def edit_final(self, reply: ReplyGeneratedData, message_id: str) -> Pushed: ...


@dataclass
class ProgressDisplay:
    adapters: Mapping[str, OutboundAdapter]
    store: ProgressStore

    async def show(self, event: ReplyProgress) -> Sequence[Event]:
        d = event.data
        adapter = self.adapters.get(d.channel)
        if adapter is None or d.in_reply_to is None or not effects_of(event).push:
            return []
        mode = adapter.channel.progress
        if mode == "off" or (d.stage == "partial" and (mode != "stream" or not isinstance(adapter, Editing))):
            return []
        try:
            await asyncio.wait_for(self._apply(adapter, d), TIMEOUT_S)
        except Exception as exc:  # best effort: logged, never retried or dead-lettered
            log.warning("progress_not_shown", channel=d.channel, stage=d.stage, seq=d.seq,
                        error=f"{type(exc).__name__}: {exc}"[:300])
        return []

    async def _apply(self, adapter: OutboundAdapter, d: ReplyProgressData) -> None:
        assert d.in_reply_to is not None  # show() checked
        applied = await self.store.advance(d.channel, d.in_reply_to, d.seq)
        if applied is None:
            log.info("progress_dropped", channel=d.channel, stage=d.stage, seq=d.seq)
            return
        if d.stage == "working":
            if isinstance(adapter, Marking):
                if applied.typing_id is None:  # once per reply: a tool loop's later calls keep the first mark
                    mark = await adapter.mark_working(d)
                    if await self.store.set_typing(d.channel, d.in_reply_to, mark):
                        await adapter.clear_working(d.reply_route, mark)  # the reply went out meanwhile
            elif isinstance(adapter, Typing):
                await adapter.typing(d)
            return
        assert isinstance(adapter, Editing)  # show() checked
        if applied.message_id is not None:
            await adapter.edit_partial(d, applied.message_id)
        else:
            await self.store.posting(d.channel, d.in_reply_to)
            message_id = await adapter.post_partial(d)
            await self.store.set_message(d.channel, d.in_reply_to, message_id)
        log.info("progress_shown", channel=d.channel, stage=d.stage, seq=d.seq)

    async def final(self, adapter: Outbound, reply: ReplyGeneratedData, reply_id: uuid.UUID) -> Pushed | None:
        """The reply edited into its streamed message (None: push it as usual). Ends the reply's progress."""
        if not isinstance(adapter, OutboundAdapter) or adapter.channel.progress == "off" or reply.in_reply_to is None:
            return None
        try:
            done = await self.store.finish(reply.channel, reply.in_reply_to)
            message_id = done.message_id
            if message_id is None and reply.streamed and done.posting_age_s is not None:
                message_id = await self._posted(reply.channel, reply.in_reply_to, TIMEOUT_S - done.posting_age_s)
        except Exception as exc:  # the reply goes out regardless; only its progress bookkeeping is lost
            log.warning("progress_not_finished", channel=reply.channel, error=f"{type(exc).__name__}: {exc}"[:300])
            return None
        if done.typing_id is not None and isinstance(adapter, Marking):
            await self._clear(adapter, reply, done.typing_id)
        if not reply.streamed or message_id is None or not isinstance(adapter, Editing):
            return None
        return await adapter.edit_final(reply, message_id)

    async def _clear(self, adapter: Marking, reply: ReplyGeneratedData, typing_id: str) -> None:
        """Best effort, like showing it: a mark that cannot be taken away never holds the reply back."""
        try:
            await asyncio.wait_for(adapter.clear_working(reply.reply_route, typing_id), TIMEOUT_S)
        except Exception as exc:
            log.warning("progress_mark_not_cleared", channel=reply.channel, error=f"{type(exc).__name__}: {exc}"[:300])

    async def _posted(self, channel: str, in_reply_to: str, within_s: float) -> str | None:
        """The id of a first partial still being sent when the reply came, once it is known: the reply then
        edits it rather than sending a second message beside it. A partial slower than its own timeout
        (``TIMEOUT_S``) has failed: the reply is sent as usual."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, within_s)
        while loop.time() < deadline:
            await asyncio.sleep(POLL_S)
            message_id = await self.store.message(channel, in_reply_to)
            if message_id is not None:
                log.info("progress_waited_for_partial", channel=channel)
                return message_id
        return None
