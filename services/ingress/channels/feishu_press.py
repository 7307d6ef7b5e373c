"""A press of a button on the bot's card: the ``card.action.trigger`` callback (schema 2.0) as a message.

Feishu sends it to the callback address with the same encryption, verification token and signature as
events (lark-oapi's ``EventDispatcherHandler`` reads both with one code path, answering a callback with what
its ``P2CardActionTrigger`` handler returns), and over the long connection. ``event.operator`` is who
pressed, ``event.action.value`` the value object the card's button carried (egress's ``feishu_parts``
writes it: the button's value and label, the chat type and thread), ``event.context`` the card's message
and chat. The press is a message of that chat, its id the callback's ``header.event_id`` (a redelivered
press is the same event, a second press a new one), answering the card's message. Feishu wants an answer
within 3 s: an empty object or a toast, given here once the message is on the broker.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from agentbus.events import Action, Chat, Sender
from agentbus.services.ingress.channels.base import Rejected
from agentbus.services.ingress.inbound import Answer, Inbound, InboundMessage

CARD_ACTION = "card.action.trigger"
EMPTY = Answer(200, b"{}")
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
MAX_VALUE, MAX_LABEL = 200, 40  # a Button's own limits: a longer value was not put there by egress


def _str(d: Any, key: str) -> str | None:
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, str) and v else None


def toast(content: str) -> Answer:
    return Answer(200, orjson.dumps({"toast": {"type": "info", "content": content[:100]}}))


def press(event_id: str, body: dict[str, Any]) -> Inbound:
    """The callback's ``event`` object as a message, or ``Rejected`` (400) with what is wrong."""
    operator, action, context = body.get("operator"), body.get("action"), body.get("context")
    if not isinstance(operator, dict) or not isinstance(action, dict) or not isinstance(context, dict):
        raise Rejected(400, "card callback without operator, action or context")
    tag = _str(action, "tag")
    if tag is not None and tag != "button":
        return Inbound(answer=EMPTY, dedupe_id=event_id, note=f"card action {tag[:32]!r} ignored")
    open_id = _str(operator, "open_id") or _str(operator, "union_id") or _str(operator, "user_id")
    message_id, chat_id = _str(context, "open_message_id"), _str(context, "open_chat_id")
    if not open_id or not _ID.match(open_id):
        raise Rejected(400, "card callback without operator.open_id")
    if not message_id or not chat_id or not _ID.match(message_id) or not _ID.match(chat_id):
        raise Rejected(400, "card callback without context.open_message_id and open_chat_id")
    value = action.get("value")
    if not isinstance(value, dict):
        raise Rejected(400, "card callback without an action.value object")
    pressed, label = value.get("value"), value.get("label")
    if not isinstance(pressed, str) or not pressed.strip() or len(pressed) > MAX_VALUE:
        raise Rejected(400, f"action.value.value must be a string of 1 to {MAX_VALUE} characters")
    if label is not None and (not isinstance(label, str) or len(label) > MAX_LABEL):
        raise Rejected(400, f"action.value.label must be a string of at most {MAX_LABEL} characters")
    chat_type = value.get("chat_type")
    if chat_type not in ("direct", "group"):
        raise Rejected(400, "action.value.chat_type must be direct or group (not a card this bot sent)")
    thread = value.get("thread_id")
    if thread is not None and (not isinstance(thread, str) or not _ID.match(thread)):
        raise Rejected(400, "action.value.thread_id is malformed")
    route: dict[str, Any] = {"chat_id": chat_id, "message_id": message_id}
    if thread:
        route["thread_id"] = thread
    return Inbound(
        answer=toast(f"✓ {label or pressed}"),
        dedupe_id=event_id,
        message=InboundMessage(
            platform_message_id=event_id,
            sender=Sender(id=open_id),
            chat=Chat(id=chat_id, type=chat_type),
            text=pressed,
            mentioned_bot=True,  # a press on the bot's own card is addressed to the bot
            reply_route=route,
            action=Action(value=pressed, label=label or None, card_message_id=message_id),
        ),
    )
