"""Generic signed webhook (Standard Webhooks): ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``.

Body: ``{"conversation": "...", "sender": {"id": "...", "name": "..."}, "text": "...",
"chat_type": "direct"|"group", "mentioned": bool, "message_id": "..."}``.

A press of a button of a card the channel pushed carries ``"action": {"value": ..., "label": ...,
"card_message_id": ...}`` (only ``value`` required, no other keys); ``text`` may then be left out and is the
button's value, which is what the agent reads. A press is addressed to the bot, so it needs no mention in a
group. ``message_id`` (or else ``webhook-id``) identifies the press: a redelivery is a duplicate.
"""

from __future__ import annotations

import binascii

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from agentbus.channeltypes import WebhookChannel
from agentbus.events import Action, Chat, Sender
from agentbus.services.ingress.channels.base import HttpRequest, InboundAdapter, Rejected
from agentbus.services.ingress.inbound import Answer, Inbound, InboundMessage


class _SenderIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=256)
    name: str | None = Field(default=None, max_length=256)


class _ActionIn(BaseModel):
    # strict where the old body is lenient: a press is new, so an unknown key is a sender's mistake to hear of
    model_config = ConfigDict(extra="forbid")
    value: str = Field(min_length=1, max_length=200)  # as long as a Button's value may be
    label: str | None = Field(default=None, min_length=1, max_length=40)
    card_message_id: str | None = Field(default=None, min_length=1, max_length=256)


class WebhookMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    conversation: str = Field(min_length=1, max_length=256)
    sender: _SenderIn
    text: str | None = Field(default=None, min_length=1, max_length=65536)
    chat_type: str = Field(default="direct", pattern="^(direct|group)$")
    mentioned: bool = False
    message_id: str | None = Field(default=None, max_length=256)
    action: _ActionIn | None = None

    @model_validator(mode="after")
    def _text_or_action(self) -> WebhookMessage:
        if self.text is None and self.action is None:
            raise ValueError("text is required (it may be left out only with an action)")
        return self


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
        action = None
        if m.action is not None:
            action = Action(value=m.action.value, label=m.action.label, card_message_id=m.action.card_message_id)
        return Inbound(
            answer=Answer(202, b'{"accepted":true}'),
            dedupe_id=msg_id,
            message=InboundMessage(
                platform_message_id=m.message_id or msg_id,
                sender=Sender(id=m.sender.id, name=m.sender.name),
                chat=Chat(id=m.conversation, type=chat_type),
                text=m.text if m.text is not None else m.action.value if m.action is not None else "",
                mentioned_bot=m.mentioned or chat_type == "direct",
                reply_route={"conversation": m.conversation},
                action=action,
            ),
        )
