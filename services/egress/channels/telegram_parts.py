"""A reply's card and attachments in the Bot API's own forms: an inline keyboard, sendPhoto / sendDocument.

A card's buttons become ``reply_markup.inline_keyboard`` (one button a row) on the reply's last text message;
a press comes back as a ``callback_query`` whose ``data`` is the button's value. ``callback_data`` holds at
most 64 bytes and the value comes back only through it (ingress keeps no state of what egress sent), so a card
with a value longer than that is sent as text instead (``parts_text``: one line per button with the value to
answer), never with a value cut short. Telegram fetches an attachment's URL itself: an image goes out with
``sendPhoto``, anything else with ``sendDocument``, after the text, its name as the caption.
"""

from __future__ import annotations

from typing import Any

from agentbus.events import Card, ReplyGeneratedData
from agentbus.services.egress.channels.parts_text import text_with_parts

MAX_CALLBACK_DATA = 64  # bytes (Bot API: InlineKeyboardButton.callback_data, 1-64 bytes)
MAX_CAPTION = 1024  # characters after entities parsing


def keyboard(card: Card | None) -> dict[str, Any] | None:
    """The card's buttons as an ``InlineKeyboardMarkup``, or ``None`` when there are none or a value does not
    fit ``callback_data``."""
    if card is None or not card.buttons:
        return None
    if any(len(b.value.encode("utf-8")) > MAX_CALLBACK_DATA for b in card.buttons):
        return None
    return {"inline_keyboard": [[{"text": b.label, "callback_data": b.value}] for b in card.buttons]}


def text_of(reply: ReplyGeneratedData) -> ReplyGeneratedData:
    """The reply as its text messages should read: the card's title and body added where they differ from the
    reply's text, or the whole card as text when it cannot be a keyboard. A reply without parts is itself."""
    card = reply.card
    if card is None:
        return reply
    if keyboard(card) is None:
        return reply.model_copy(update={"text": text_with_parts(reply, attachments=False)})
    own = reply.text.strip()
    extra = [s.strip() for s in (card.title, card.text) if s and s.strip() and s.strip() != own]
    text = "\n\n".join([t for t in (own, *extra) if t])
    if not text:  # a keyboard needs a message to sit on: the buttons spelled out are the least surprising one
        text = text_with_parts(reply, attachments=False)
    return reply if text == reply.text else reply.model_copy(update={"text": text})


def file_calls(reply: ReplyGeneratedData) -> list[tuple[str, dict[str, Any]]]:
    """(method, arguments without chat) of each attachment Telegram can fetch by its URL."""
    calls: list[tuple[str, dict[str, Any]]] = []
    for a in reply.attachments:
        if not a.url:
            continue
        method, field = ("sendPhoto", "photo") if a.kind == "image" else ("sendDocument", "document")
        args: dict[str, Any] = {field: a.url}
        if a.name:
            args["caption"] = a.name[:MAX_CAPTION]
        calls.append((method, args))
    return calls
