"""Slack push: ``chat.postMessage`` with the bot token, in the thread the message came from.

Slack answers HTTP 200 with ``{"ok": false, "error": "..."}`` for most failures and HTTP 429 with
``Retry-After`` when rate limited. ``chat.postMessage`` has no idempotency key, so a push that may have
reached Slack (a read timeout, a 2xx answer that cannot be read) is never repeated. A reply in a channel
starts with ``<@U...>``, the asker's mention, unless the channel's ``mention_asker`` is off. A card or an
image makes the message Block Kit ``blocks`` (``slack_blocks``), ``text`` staying the notification's words.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import orjson

from agentbus.channeltypes.slack import SlackChannel
from agentbus.events import ReplyGeneratedData, ReplyProgressData
from agentbus.services.egress.channels import slack_blocks
from agentbus.services.egress.channels.base import (
    OutboundAdapter,
    TokenCache,
    retry_after_seconds,
    transport_failure,
)
from agentbus.services.egress.channels.slack_mrkdwn import escape, to_mrkdwn
from agentbus.services.egress.ports import Permanent, Pushed, Retryable

# errors worth another try; every other `error` is a fault of the request, the token or the channel
RETRYABLE_ERRORS = {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable",
                    "request_timeout", "team_is_restricted_temporarily"}
MAX_TEXT = 40_000  # Slack truncates longer texts
MAX_MARKDOWN = 12_000  # markdown_text limit
USER_ID = re.compile(r"[UW][A-Z0-9]{2,30}")  # a user id as Slack writes it in <@...>


class SlackOutbound(OutboundAdapter):
    type = "slack"
    idempotent = False
    default_rate_per_minute = 60  # chat.postMessage: about one message per second per channel
    channel: SlackChannel

    def __init__(self, channel: SlackChannel, http: httpx.AsyncClient, tokens: TokenCache) -> None:
        super().__init__(channel, http, tokens)
        self._token = channel.bot_token.value()

    def body(self, reply: ReplyGeneratedData) -> dict[str, Any]:
        route = reply.reply_route
        body: dict[str, Any] = {"channel": route.get("channel") or reply.chat.id}
        asker = self.addressee(reply)
        mention = f"<@{asker.id}> " if asker is not None and USER_ID.fullmatch(asker.id) else ""
        lines = slack_blocks.file_lines(reply)
        text = "\n\n".join([t for t in (reply.text, "\n".join(lines)) if t]) if lines else reply.text
        rich = reply.card is not None or bool(slack_blocks.images(reply))
        card_text = reply.card.text if reply.card is not None else ""
        if reply.format == "markdown" and self.channel.markdown_as == "markdown_text" and not rich:
            body["markdown_text"] = (mention + text)[:MAX_MARKDOWN]  # markdown_text cannot go with blocks
        elif reply.format == "markdown":
            body["text"] = (mention + to_mrkdwn(text))[:MAX_TEXT]
            body["mrkdwn"] = True
            card_text = to_mrkdwn(card_text)
        else:
            body["text"] = (mention + escape(text))[:MAX_TEXT]
            body["mrkdwn"] = False
            card_text = escape(card_text)
        found = slack_blocks.blocks(reply, body.get("text", ""), card_text)
        if found is not None:
            body["blocks"] = found
            if not body["text"].strip():  # the notification needs words: the card's title or its first choice
                card = reply.card
                body["text"] = escape((card.title or card.buttons[0].label) if card and (card.title or card.buttons)
                                      else "image")
        if isinstance(route.get("thread_ts"), str):
            body["thread_ts"] = route["thread_ts"]
        return body

    async def push(self, reply: ReplyGeneratedData, reply_id: uuid.UUID) -> Pushed:
        return await self._call("chat.postMessage", self.body(reply))

    async def _call(self, method: str, body: dict[str, Any]) -> Pushed:
        try:
            resp = await self.http.post(
                f"{self.channel.base}/{method}",
                content=orjson.dumps(body),
                headers={"authorization": f"Bearer {self._token}", "content-type": "application/json; charset=utf-8"},
            )
        except httpx.TransportError as exc:
            raise transport_failure(exc) from exc
        if resp.status_code == 429:
            raise Retryable("ratelimited (HTTP 429)", 429, retry_after_seconds(resp))
        if resp.status_code >= 500 or resp.status_code in (408, 425):
            raise Retryable(f"HTTP {resp.status_code}", resp.status_code, retry_after_seconds(resp))
        try:
            data = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            if resp.status_code >= 400:
                raise Permanent(f"HTTP {resp.status_code}: {resp.text[:200]}", resp.status_code)
            # a 2xx Slack could not answer readably may still have posted the message (a proxy's page, a
            # cut-off body): pushing again could show it twice
            raise Retryable(f"HTTP {resp.status_code} without a JSON answer", resp.status_code,
                            ambiguous=resp.status_code < 300)
        if data.get("ok") is True:
            ts = data.get("ts")
            return Pushed(http_status=resp.status_code, platform_message_id=ts if isinstance(ts, str) else None)
        error = str(data.get("error") or "unknown_error")[:100]
        if error in RETRYABLE_ERRORS:
            raise Retryable(error, resp.status_code, retry_after_seconds(resp))
        raise Permanent(error, resp.status_code)

    # ---------------------------------------------------------------- progress (see egress.progress)
    # Slack's indicator is the assistant thread status ("is thinking…", assistant.threads.setStatus, chat:write):
    # shown in the question's thread until the bot's next message there, or two minutes; set in direct
    # messages only, where an app's assistant threads are. Slack refuses it outside them; progress is best
    # effort, so that refusal is logged and nothing else changes. progress: stream posts the answer so far
    # and edits it with chat.update.

    async def typing(self, progress: ReplyProgressData) -> None:
        if progress.chat.type != "direct":  # assistant threads live in the app's direct messages
            return
        route = progress.reply_route
        thread = route.get("thread_ts") or route.get("ts")
        if not isinstance(thread, str):
            return
        await self._call("assistant.threads.setStatus", {"channel_id": self._where(progress), "thread_ts": thread,
                                                         "status": self.channel.typing_status})

    def _where(self, reply: ReplyGeneratedData | ReplyProgressData) -> str:
        return str(reply.reply_route.get("channel") or reply.chat.id)

    async def post_partial(self, progress: ReplyProgressData) -> str:
        body: dict[str, Any] = {"channel": self._where(progress), "text": escape(progress.text)[:MAX_TEXT],
                                "mrkdwn": False}
        if isinstance(progress.reply_route.get("thread_ts"), str):
            body["thread_ts"] = progress.reply_route["thread_ts"]
        pushed = await self._call("chat.postMessage", body)
        if pushed.platform_message_id is None:
            raise Permanent("chat.postMessage answered without a ts")
        return pushed.platform_message_id

    async def edit_partial(self, progress: ReplyProgressData, message_id: str) -> None:
        await self._call("chat.update", {"channel": self._where(progress), "ts": message_id,
                                         "text": escape(progress.text)[:MAX_TEXT]})

    async def edit_final(self, reply: ReplyGeneratedData, message_id: str) -> Pushed:
        body = {k: v for k, v in self.body(reply).items() if k not in ("thread_ts", "mrkdwn")}
        pushed = await self._call("chat.update", {**body, "ts": message_id})
        return Pushed(pushed.http_status, message_id)
