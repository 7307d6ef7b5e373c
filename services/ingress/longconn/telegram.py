"""Telegram without a webhook: ``getUpdates`` long polling.

Telegram keeps an update until a ``getUpdates`` call carries an ``offset`` above its ``update_id``. So the
offset moves past an update only once ``deliver`` has returned for it (the message is on the broker), and
the next poll is what confirms it: a replica killed mid-batch leaves the rest unconfirmed, and whichever
replica polls next receives them again, published once by the update id. The session starts with
``deleteWebhook`` (keeping pending updates), because Telegram refuses ``getUpdates`` while a webhook is
set; a second poller of the same bot (a replica that lost its lease late) is answered 409, which ends
that session. A press (``callback_query``) is answered with ``answerCallbackQuery`` once delivered.
"""

from __future__ import annotations

from typing import Any

import httpx
import structlog

from agentbus.channeltypes.telegram import TelegramChannel
from agentbus.services.ingress.channels.base import Rejected
from agentbus.services.ingress.channels.telegram import TelegramInbound
from agentbus.services.ingress.longconn.base import LongConnection

log = structlog.get_logger("agentbus.ingress")

ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]


class TelegramApiError(Exception):
    def __init__(self, method: str, status: int, description: str) -> None:
        super().__init__(f"{method}: {status} {description}"[:300])
        self.status = status


class TelegramPolling(LongConnection):
    type = "telegram"
    channel: TelegramChannel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.adapter, TelegramInbound):
            raise TypeError("TelegramPolling needs the Telegram inbound adapter")
        self._normalise = self.adapter.normalise
        self._offset: int | None = None
        self._webhook_cleared = False

    async def _call(self, method: str, args: dict[str, Any], timeout: float) -> Any:
        url = f"{self.channel.base}/bot{self.channel.bot_token.value()}/{method}"
        r = await self.http.post(url, json=args, timeout=timeout)
        try:
            body = r.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("ok") is not True:
            description = body.get("description") if isinstance(body, dict) else None
            if r.status_code == 409 and "webhook" in str(description):
                self._webhook_cleared = False
            raise TelegramApiError(method, r.status_code, str(description or "unreadable answer")[:200])
        return body.get("result")

    async def run(self) -> None:
        if not self._webhook_cleared:
            await self._call("deleteWebhook", {"drop_pending_updates": False}, timeout=15.0)
            self._webhook_cleared = True
        wait = self.channel.poll_timeout_s
        while True:
            args: dict[str, Any] = {"timeout": wait, "allowed_updates": ALLOWED_UPDATES}
            if self._offset is not None:
                args["offset"] = self._offset
            updates = await self._call("getUpdates", args, timeout=wait + 15.0)
            self.state.up()
            if not isinstance(updates, list):
                raise TelegramApiError("getUpdates", 200, "result is not a list")
            for update in updates:
                await self._one(update)

    async def _one(self, update: Any) -> None:
        uid = update.get("update_id") if isinstance(update, dict) else None
        if not isinstance(uid, int) or isinstance(uid, bool):
            raise TelegramApiError("getUpdates", 200, "an update without update_id")
        try:
            inbound = self._normalise(update)
        except Rejected as rej:
            # a malformed update would come back on every poll: it is logged and confirmed, never published
            log.warning("stream_update_rejected", channel=self.channel.id, update_id=uid, reason=rej.reason)
        else:
            outcome = await self.deliver(inbound)  # raises: the offset stays, so Telegram sends it again
            log.debug("stream_update_delivered", channel=self.channel.id, update_id=uid, outcome=outcome.status)
        await self._answer_query(update.get("callback_query"))
        self._offset = uid + 1

    async def _answer_query(self, query: Any) -> None:
        """Stop the client's spinner of a press once it is on the broker. Only a courtesy: a failure is logged
        (the client stops waiting after a while on its own), never a reason to receive the press again."""
        qid = query.get("id") if isinstance(query, dict) else None
        if not isinstance(qid, str) or not qid:
            return
        try:
            await self._call("answerCallbackQuery", {"callback_query_id": qid}, timeout=10.0)
        except (TelegramApiError, httpx.HTTPError) as exc:
            log.warning("callback_query_not_answered", channel=self.channel.id, error=str(exc)[:200])
