"""A press of an inline keyboard button (``callback_query``) as a message of the chat the card is in.

Egress puts a button's value in its ``callback_data`` verbatim (at most 64 bytes; a card with longer values
goes out as text), so ``data`` is the value the model reads as the person's answer. The query's ``id`` is
unique per press: it is both the de-duplication key (a webhook retry, a re-polled update) and the message's
platform id, so two presses of one button are two messages. A press is addressed to the bot (it pressed the
bot's own card), so it needs no mention in a group. The client shows a spinner until the query is answered:
the webhook answers it in the response body (``method: answerCallbackQuery``, which the Bot API runs), the
poller calls ``answerCallbackQuery`` (``answer_of``).
"""

from __future__ import annotations

from typing import Any

import orjson

from agentbus.events import Action, Chat, Sender
from agentbus.services.ingress.channels.base import Rejected
from agentbus.services.ingress.inbound import Answer, Inbound, InboundMessage

MAX_DATA = 64  # bytes, as the Bot API limits callback_data
MAX_ID = 128


def _int(d: Any, key: str) -> int | None:
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def answer_of(query_id: str) -> Answer:
    """The webhook's response: Telegram calls ``answerCallbackQuery`` with it, which stops the spinner."""
    return Answer(200, orjson.dumps({"method": "answerCallbackQuery", "callback_query_id": query_id}))


def _label(message: dict[str, Any], data: str) -> str | None:
    """The pressed button's text, found by its callback_data in the card's keyboard (Telegram sends the card
    message with the query)."""
    markup = message.get("reply_markup")
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    for row in rows if isinstance(rows, list) else []:
        for button in row if isinstance(row, list) else []:
            if isinstance(button, dict) and button.get("callback_data") == data and isinstance(button.get("text"), str):
                return str(button["text"])[:200]
    return None


def press(query: Any, bot_id: int | None) -> Inbound:
    """One ``callback_query`` as at most one message; ``Rejected`` (400) when it is malformed."""
    if not isinstance(query, dict):
        raise Rejected(400, "callback_query is not an object")
    qid = query.get("id")
    if not isinstance(qid, str) or not qid or len(qid) > MAX_ID:
        raise Rejected(400, "callback_query without a valid id")
    answer = answer_of(qid)
    dedupe = f"callback:{qid}"
    sender, message, data = query.get("from"), query.get("message"), query.get("data")
    sender_id = _int(sender, "id")
    if sender_id is None or not isinstance(sender, dict):
        raise Rejected(400, "callback_query without from.id")
    if data is None:
        return Inbound(answer=answer, dedupe_id=dedupe, note="callback_query without data (a game) ignored")
    if not isinstance(data, str) or not data or len(data.encode("utf-8")) > MAX_DATA:
        raise Rejected(400, f"callback_query data must be a string of 1-{MAX_DATA} bytes")
    if message is None:
        return Inbound(answer=answer, dedupe_id=dedupe, note="callback_query of an inline message ignored")
    chat = message.get("chat") if isinstance(message, dict) else None
    chat_id, message_id = _int(chat, "id"), _int(message, "message_id")
    if chat_id is None or message_id is None or not isinstance(chat, dict) or not isinstance(message, dict):
        raise Rejected(400, "callback_query message without chat.id or message_id")
    ctype = chat.get("type")
    if ctype not in ("private", "group", "supergroup"):
        return Inbound(answer=answer, dedupe_id=dedupe, note=f"chat type {str(ctype)[:20]!r} ignored")
    route: dict[str, Any] = {"chat_id": chat_id, "message_id": message_id}
    if message.get("is_topic_message") is True and _int(message, "message_thread_id") is not None:
        route["message_thread_id"] = message["message_thread_id"]
    name = sender.get("username") or " ".join(
        str(sender[k]) for k in ("first_name", "last_name") if isinstance(sender.get(k), str))
    label = _label(message, data)
    return Inbound(
        answer=answer,
        dedupe_id=dedupe,
        message=InboundMessage(
            platform_message_id=dedupe,
            sender=Sender(id=str(sender_id), name=str(name)[:256] or None, is_bot=sender.get("is_bot") is True),
            chat=Chat(id=str(chat_id), type="direct" if ctype == "private" else "group",
                      name=chat.get("title") if isinstance(chat.get("title"), str) else None),
            text=data,
            mentioned_bot=True,
            reply_route=route,
            from_self=bot_id is not None and sender_id == bot_id,
            action=Action(value=data, label=label, card_message_id=str(message_id)),
        ),
    )
