"""Telegram push: ``sendMessage`` as a reply to the message, markdown as MarkdownV2.

The Bot API answers ``{"ok": false, "error_code": N, "description": ..., "parameters": {...}}``: 429 carries
``retry_after``; a group upgraded to a supergroup carries ``migrate_to_chat_id`` (sent there at once);
MarkdownV2 the API cannot parse is sent again as plain text; other 4xx (chat not found, bot blocked,
kicked) are permanent. Texts longer than 4096 characters go out as several messages; which ones already
went out is remembered, so a retry continues where the last attempt stopped. ``sendMessage`` has no
idempotency key. Limits: egress keeps each chat to one message a second, a group to about 20 a minute
(``rate_for``); the 30 a second for the whole bot is kept here. A reply answers the message as a reply to it
(``reply_to_message``); in groups only when it answers a person's message and ``mention_asker`` is on, which
is how Telegram addresses the asker. A card is an inline keyboard on the last text message, attachments
follow the text (``telegram_parts``); they count as parts of the reply, so a retry resumes after them too.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from typing import Any

import httpx
import orjson

from agentbus.channeltypes.telegram import TelegramChannel
from agentbus.events import ReplyGeneratedData, ReplyProgressData
from agentbus.services.egress.channels import telegram_parts
from agentbus.services.egress.channels.base import (
    OutboundAdapter,
    TokenCache,
    retry_after_seconds,
    transport_failure,
)
from agentbus.services.egress.channels.telegram_markdown import to_markdown_v2
from agentbus.services.egress.ports import Permanent, Pushed, Retryable

MAX_UNITS = 4096  # message text limit, counted here in UTF-16 code units (never more than characters)


def _units(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = MAX_UNITS) -> list[str]:
    """Parts of at most ``limit`` UTF-16 units, cut at a line break or space where there is one."""
    parts: list[str] = []
    rest = text
    while _units(rest) > limit:
        cut = 0
        size = 0
        for i, ch in enumerate(rest):
            size += 2 if ord(ch) > 0xFFFF else 1
            if size > limit:
                cut = i
                break
        window = rest[:cut]
        at = max(window.rfind("\n"), window.rfind(" "))
        at = at + 1 if at > cut // 2 else cut
        parts.append(rest[:at])
        rest = rest[at:]
    if rest or not parts:
        parts.append(rest)
    return parts


def _dict(value: Any) -> dict[str, Any]:
    """A JSON object of the answer, or an empty one where the API sent something else."""
    return value if isinstance(value, dict) else {}


class _PerSecond:
    """Overall limit: at most ``rate`` sends in any one-second window."""

    def __init__(self, rate: int) -> None:
        self._rate = rate
        self._sent: list[float] = []
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self._sent = [t for t in self._sent if now - t < 1.0]
                if len(self._sent) < self._rate:
                    self._sent.append(now)
                    return
                await asyncio.sleep(1.0 - (now - self._sent[0]))


class TelegramOutbound(OutboundAdapter):
    type = "telegram"
    idempotent = False
    default_rate_per_minute = 60  # per chat: "avoid sending more than one message per second"
    channel: TelegramChannel

    def __init__(self, channel: TelegramChannel, http: httpx.AsyncClient, tokens: TokenCache) -> None:
        super().__init__(channel, http, tokens)
        self._api = f"{channel.base}/bot{channel.bot_token.value()}/"
        self._overall = _PerSecond(channel.global_rate_per_second)
        self._progress: OrderedDict[uuid.UUID, int] = OrderedDict()  # parts already sent, per reply
        self._migrated: dict[int, int] = {}  # group id -> the supergroup it became

    def rate_for(self, reply: ReplyGeneratedData) -> int | None:
        if self._is_group(reply):
            return self.channel.group_rate_per_minute
        return self.rate_per_minute

    @staticmethod
    def _is_group(reply: ReplyGeneratedData) -> bool:
        chat_id = reply.reply_route.get("chat_id", reply.chat.id)
        negative = isinstance(chat_id, int) and chat_id < 0 or isinstance(chat_id, str) and chat_id.startswith("-")
        return reply.chat.type == "group" or negative

    def _replies_to_message(self, reply: ReplyGeneratedData) -> bool:
        if not self.channel.reply_to_message:
            return False
        return self.addressee(reply) is not None if reply.chat.type == "group" else True

    def messages(self, reply: ReplyGeneratedData) -> list[tuple[str, str | None]]:
        """(text, parse_mode) of each message this reply is sent as."""
        if reply.format == "markdown" and self.channel.markdown_as == "markdown_v2":
            converted = to_markdown_v2(reply.text)
            if _units(converted) <= MAX_UNITS:
                return [(converted, "MarkdownV2")]
        return [(part, None) for part in split_text(reply.text)]

    async def push(self, reply: ReplyGeneratedData, reply_id: uuid.UUID) -> Pushed:
        route = reply.reply_route
        chat_id: Any = route.get("chat_id", reply.chat.id)
        if isinstance(chat_id, str) and chat_id.lstrip("-").isdigit():
            chat_id = int(chat_id)
        view = telegram_parts.text_of(reply)
        files = telegram_parts.file_calls(reply)
        parts = self.messages(view) if view.text.strip() or not files else []
        markup = telegram_parts.keyboard(reply.card)
        done = self._progress.get(reply_id, 0)
        pushed = Pushed()
        for i in range(done, len(parts) + len(files)):
            target = self._migrated.get(chat_id, chat_id) if isinstance(chat_id, int) else chat_id
            body: dict[str, Any] = {"chat_id": target}
            if i < len(parts):
                text, mode = parts[i]
                body["text"] = text
                if mode:
                    body["parse_mode"] = mode
            else:
                method, args = files[i - len(parts)]
                body.update(args)
            if isinstance(route.get("message_thread_id"), int):
                body["message_thread_id"] = route["message_thread_id"]
            if i == 0 and self._replies_to_message(reply) and isinstance(route.get("message_id"), int):
                body["reply_parameters"] = {"message_id": route["message_id"], "allow_sending_without_reply": True}
            if i < len(parts):
                if markup is not None and i == len(parts) - 1:
                    body["reply_markup"] = markup
                pushed = await self._send(body, split_text(view.text)[0] if mode else None)
            else:
                sent = await self._send(body, None, method)
                pushed = sent if pushed.platform_message_id is None else pushed
            self._progress[reply_id] = i + 1
            self._progress.move_to_end(reply_id)
            while len(self._progress) > 10_000:
                self._progress.popitem(last=False)
        self._progress.pop(reply_id, None)
        return pushed

    async def _send(self, body: dict[str, Any], plain: str | None, method: str = "sendMessage") -> Pushed:
        """One message (or ``method`` call); ``plain`` is sent instead if the API cannot parse MarkdownV2."""
        migrated = False
        while True:
            await self._overall.acquire()
            try:
                resp = await self.http.post(self._api + method, content=orjson.dumps(body),
                                            headers={"content-type": "application/json"})
            except httpx.TransportError as exc:
                raise transport_failure(exc) from exc
            try:
                data = orjson.loads(resp.content)
            except orjson.JSONDecodeError:
                data = None
            if not isinstance(data, dict):
                if resp.status_code >= 500 or resp.status_code == 429:
                    raise Retryable(f"HTTP {resp.status_code}", resp.status_code, retry_after_seconds(resp))
                raise Permanent(f"HTTP {resp.status_code}: {resp.text[:200]}", resp.status_code)
            if data.get("ok") is True:
                mid = _dict(data.get("result")).get("message_id")
                return Pushed(http_status=resp.status_code, platform_message_id=str(mid) if mid is not None else None)
            error_code = data.get("error_code")
            code = error_code if isinstance(error_code, int) else resp.status_code
            desc = str(data.get("description") or "")[:200]
            params = _dict(data.get("parameters"))
            if code == 429 or resp.status_code == 429:
                wait = params.get("retry_after")
                raise Retryable(f"429: {desc}", 429,
                                float(wait) if isinstance(wait, (int, float)) else retry_after_seconds(resp))
            if code >= 500 or resp.status_code >= 500:
                raise Retryable(f"{code}: {desc}", resp.status_code)
            new_chat = params.get("migrate_to_chat_id")
            if isinstance(new_chat, int) and not migrated:  # the group became a supergroup: not delivered, resend
                if isinstance(body["chat_id"], int):
                    self._migrated[body["chat_id"]] = new_chat
                body, migrated = {**body, "chat_id": new_chat}, True
                continue
            if "parse_mode" in body and plain is not None and "can't parse entities" in desc.lower():
                body = {k: v for k, v in body.items() if k != "parse_mode"} | {"text": plain}
                plain = None
                continue
            raise Permanent(f"{code}: {desc}", resp.status_code)

    # ---------------------------------------------------------------- progress (see egress.progress)

    def _chat_of(self, route: dict[str, Any], chat_id: Any) -> Any:
        chat_id = route.get("chat_id", chat_id)
        if isinstance(chat_id, str) and chat_id.lstrip("-").isdigit():
            chat_id = int(chat_id)
        return self._migrated.get(chat_id, chat_id) if isinstance(chat_id, int) else chat_id

    async def typing(self, progress: ReplyProgressData) -> None:
        """sendChatAction ``typing``: shown for five seconds or until the bot's next message."""
        body: dict[str, Any] = {"chat_id": self._chat_of(progress.reply_route, progress.chat.id), "action": "typing"}
        if isinstance(progress.reply_route.get("message_thread_id"), int):
            body["message_thread_id"] = progress.reply_route["message_thread_id"]
        await self._send(body, None, "sendChatAction")

    async def post_partial(self, progress: ReplyProgressData) -> str:
        """The answer so far as a new message (plain text: half an answer's markdown may not parse)."""
        route = progress.reply_route
        body: dict[str, Any] = {"chat_id": self._chat_of(route, progress.chat.id), "text": _tail(progress.text)}
        if isinstance(route.get("message_thread_id"), int):
            body["message_thread_id"] = route["message_thread_id"]
        addresses = progress.chat.type != "group" or self.channel.mention_asker
        if self.channel.reply_to_message and addresses and isinstance(route.get("message_id"), int):
            body["reply_parameters"] = {"message_id": route["message_id"], "allow_sending_without_reply": True}
        pushed = await self._send(body, None)
        if pushed.platform_message_id is None:
            raise Permanent("sendMessage answered without a message_id")
        return pushed.platform_message_id

    async def edit_partial(self, progress: ReplyProgressData, message_id: str) -> None:
        await self._edit(progress.reply_route, progress.chat.id, message_id, _tail(progress.text), None, None)

    async def edit_final(self, reply: ReplyGeneratedData, message_id: str) -> Pushed:
        """The streamed message becomes the reply's first message; the rest of a long reply follows it, the
        card's keyboard on the last one, then the attachments."""
        view = telegram_parts.text_of(reply)
        markup = telegram_parts.keyboard(reply.card)
        (text, mode), *rest = self.messages(view)
        pushed = await self._edit(reply.reply_route, reply.chat.id, message_id, text, mode,
                                  split_text(view.text)[0] if mode else None, markup if not rest else None)
        chat_id = self._chat_of(reply.reply_route, reply.chat.id)
        for n, (more, more_mode) in enumerate(rest, start=1):
            body: dict[str, Any] = {"chat_id": chat_id, "text": more,
                                    **({"parse_mode": more_mode} if more_mode else {})}
            if markup is not None and n == len(rest):
                body["reply_markup"] = markup
            await self._send(body, None)
        for method, args in telegram_parts.file_calls(reply):
            await self._send({"chat_id": chat_id, **args}, None, method)
        return pushed

    async def _edit(self, route: dict[str, Any], chat_id: Any, message_id: str, text: str, mode: str | None,
                    plain: str | None, markup: dict[str, Any] | None = None) -> Pushed:
        body: dict[str, Any] = {"chat_id": self._chat_of(route, chat_id), "message_id": int(message_id), "text": text}
        if mode:
            body["parse_mode"] = mode
        if markup is not None:
            body["reply_markup"] = markup
        try:
            await self._send(body, plain, "editMessageText")
        except Permanent as exc:
            if "message is not modified" not in str(exc):  # the same text again (a repeated edit) is done
                raise
        return Pushed(http_status=200, platform_message_id=message_id)


def _tail(text: str) -> str:
    """A partial that outgrew one message shows its last 4096 units (the final reply is split properly)."""
    if _units(text) <= MAX_UNITS:
        return text
    parts = split_text(text, MAX_UNITS - 1)
    return "…" + parts[-1]
