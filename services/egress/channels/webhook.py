"""Generic signed webhook push: a Standard Webhooks POST to the channel's ``push_url``.

``webhook-id`` is the reply id, so a receiver that de-duplicates by it (as the specification asks) sees
one delivery even if an ambiguous push has to be repeated.

A reply's ``card`` and ``attachments`` travel as they are in the event (each key only when there is one), and
the text is not given the plain-text form of them: the receiver renders them as its own UI can. A reply without
either is the same body as before they existed.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from standardwebhooks import Webhook

from agentbus.channeltypes import WebhookChannel
from agentbus.events import ReplyGeneratedData
from agentbus.services.egress.channels.base import (
    OutboundAdapter,
    TokenCache,
    classify_http,
    transport_failure,
)
from agentbus.services.egress.ports import Permanent, Pushed


def push_body(reply: ReplyGeneratedData, reply_id: uuid.UUID) -> dict[str, Any]:
    """The JSON a receiver gets: the reply's fields, then its card and attachments where it has them."""
    body: dict[str, Any] = {
        "type": "reply",
        "reply_id": str(reply_id),
        "conversation": reply.chat.id,
        "text": reply.text,
        "format": reply.format,
        "agent": reply.agent,
        "model": reply.model,
        "in_reply_to": reply.in_reply_to,
    }
    if reply.card is not None:
        body["card"] = reply.card.model_dump(mode="json")
    if reply.attachments:
        body["attachments"] = [a.model_dump(mode="json") for a in reply.attachments]
    return body


class WebhookOutbound(OutboundAdapter):
    type = "webhook"
    idempotent = True
    channel: WebhookChannel

    def __init__(self, channel: WebhookChannel, http: httpx.AsyncClient, tokens: TokenCache) -> None:
        super().__init__(channel, http, tokens)
        secret = channel.push_secret or channel.secret
        self._wh = Webhook(secret.value())

    async def push(self, reply: ReplyGeneratedData, reply_id: uuid.UUID) -> Pushed:
        if not self.channel.push_url:
            raise Permanent("channel has no push_url")
        body = orjson.dumps(push_body(reply, reply_id)).decode()
        now = datetime.fromtimestamp(int(time.time()), UTC)
        msg_id = str(reply_id)
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._wh.sign(msg_id, now, body),
        }
        try:
            resp = await self.http.post(self.channel.push_url, content=body.encode(), headers=headers)
        except httpx.TransportError as exc:
            raise transport_failure(exc) from exc
        classify_http(resp)
        return Pushed(http_status=resp.status_code, platform_message_id=resp.headers.get("x-message-id"))
