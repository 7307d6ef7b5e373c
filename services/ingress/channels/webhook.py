"""Generic signed webhook (Standard Webhooks): ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``.

Body: ``{"conversation": "...", "sender": {"id": "...", "name": "..."}, "text": "...",
"chat_type": "direct"|"group", "mentioned": bool, "message_id": "..."}``.
"""

from __future__ import annotations

import binascii

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from agentbus.channeltypes import WebhookChannel
from agentbus.events import Chat, Sender
from agentbus.services.ingress.channels.base import HttpRequest, InboundAdapter, Rejected
from agentbus.services.ingress.inbound import Answer, Inbound, InboundMessage


class _SenderIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=256)
    name: str | None = Field(default=None, max_length=256)


class WebhookMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    conversation: str = Field(min_length=1, max_length=256)
    sender: _SenderIn
    text: str = Field(min_length=1, max_length=65536)
    chat_type: str = Field(default="direct", pattern="^(direct|group)$")
    mentioned: bool = False
    message_id: str | None = Field(default=None, max_length=256)


class WebhookInbound(InboundAdapter):
    type = "webhook"
    channel: WebhookChannel

    def __init__(self, channel: WebhookChannel) -> None:
        super().__init__(channel)
        self._wh = Webhook(channel.secret.value())

    async def receive(self, request: HttpRequest) -> Inbound:
        h = request.headers
        msg_id = h.get("webhook-id", "")
        if not msg_id or not h.get("webhook-timestamp") or not h.get("webhook-signature"):
            raise Rejected(401, "missing webhook-id, webhook-timestamp or webhook-signature header")
        if len(msg_id) > 256:
            raise Rejected(400, "webhook-id too long")
        try:
            request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise Rejected(400, "body is not UTF-8") from None
        try:
            self._wh.verify(request.body, dict(h), json_parse=False)
        except WebhookVerificationError as err:
            reason = str(err)
            if "too old" in reason or "too new" in reason:
                raise Rejected(401, f"stale timestamp: {reason}") from None
            raise Rejected(401, f"invalid signature: {reason}") from None
        except (ValueError, binascii.Error, OverflowError):
            raise Rejected(401, "invalid signature: malformed signature header") from None
        try:
            raw = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            raise Rejected(400, "malformed JSON body") from None
        try:
            m = WebhookMessage.model_validate(raw)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise Rejected(422, f"invalid message: {where}: {first['msg']}") from None
        chat_type = "group" if m.chat_type == "group" else "direct"
        return Inbound(
            answer=Answer(202, b'{"accepted":true}'),
            dedupe_id=msg_id,
            message=InboundMessage(
                platform_message_id=m.message_id or msg_id,
                sender=Sender(id=m.sender.id, name=m.sender.name),
                chat=Chat(id=m.conversation, type=chat_type),
                text=m.text,
                mentioned_bot=m.mentioned or chat_type == "direct",
                reply_route={"conversation": m.conversation},
            ),
        )
