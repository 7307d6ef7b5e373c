"""The Bot API's checks of inline keyboards, photos and documents, and ``callback_query`` updates (presses).

Checked as the Bot API documents them (core.telegram.org/bots/api): ``InlineKeyboardMarkup.inline_keyboard``
is an array of rows of ``InlineKeyboardButton``; each button has a ``text`` and exactly one of its action
fields; ``callback_data`` is 1-64 bytes (Telegram answers ``BUTTON_DATA_INVALID`` otherwise). ``sendPhoto`` /
``sendDocument`` take a file_id or an HTTP URL Telegram fetches (the fake checks the URL's form and does not
fetch it), a caption of at most 1024 characters. A press arrives as an update carrying ``callback_query``:
its id, the presser (``from``), the card ``message`` as sent (with its ``reply_markup``), ``chat_instance``
and ``data``.
"""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

BUTTON_ACTIONS = {"url", "callback_data", "web_app", "login_url", "switch_inline_query",
                  "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "copy_text",
                  "callback_game", "pay"}
_update_ids = itertools.count(500_000)


def keyboard_problem(markup: Any) -> str | None:
    """Telegram's description of what is wrong with a ``reply_markup`` inline keyboard, or ``None``."""
    if not isinstance(markup, dict):
        return "Bad Request: can't parse reply keyboard markup JSON object"
    rows = markup.get("inline_keyboard")
    if rows is None:
        return None if any(k in markup for k in ("keyboard", "remove_keyboard", "force_reply")) else \
            "Bad Request: can't parse reply keyboard markup JSON object"
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        return "Bad Request: field \"inline_keyboard\" of the InlineKeyboardMarkup should be an Array of Arrays"
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str) or not button["text"]:
                return "Bad Request: can't parse inline keyboard button: Text is empty"
            actions = [k for k in button if k in BUTTON_ACTIONS]
            if len(actions) != 1:
                return ("Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the "
                        "inline keyboard")
            data = button.get("callback_data")
            if "callback_data" in button and (not isinstance(data, str) or not 1 <= len(data.encode()) <= 64):
                return "Bad Request: BUTTON_DATA_INVALID"
    return None


def media_problem(args: dict[str, Any], field: str) -> str | None:
    """What ``sendPhoto`` (field ``photo``) or ``sendDocument`` (``document``) refuses, or ``None``."""
    ref = args.get(field)
    if not isinstance(ref, str) or not ref:
        return f"Bad Request: there is no {field} in the request"
    if "://" in ref and not ref.startswith(("http://", "https://")):
        return "Bad Request: wrong HTTP URL specified"
    caption = args.get("caption")
    if caption is not None and (not isinstance(caption, str) or len(caption) > 1024):
        return "Bad Request: message caption is too long"
    return None


def callback_query(sent: dict[str, Any], data: str, *, presser: dict[str, Any], bot: dict[str, Any],
                   query_id: str | None = None, update_id: int | None = None) -> dict[str, Any]:
    """The update Telegram sends when ``presser`` presses the button with ``data`` on the ``sent`` message
    (as the fake recorded it: chat id, message id, plain text, reply_markup)."""
    chat_id = sent["chat_id"]
    chat: dict[str, Any] = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
    if chat_id > 0:
        chat.update(first_name=presser.get("first_name", "Alice"), username=presser.get("username"))
    else:
        chat["title"] = "Team chat"
    message: dict[str, Any] = {"message_id": sent["message_id"], "from": bot, "chat": chat,
                               "date": int(time.time()), "text": sent.get("plain", sent.get("text", ""))}
    if sent.get("reply_markup"):
        message["reply_markup"] = sent["reply_markup"]
    if isinstance(sent.get("message_thread_id"), int):
        message.update(message_thread_id=sent["message_thread_id"], is_topic_message=True)
    return {"update_id": update_id or next(_update_ids),
            "callback_query": {"id": query_id or str(uuid.uuid4().int % 10**19), "from": presser, "message": message,
                               "chat_instance": str(-abs(hash(chat_id)) % 10**18), "data": data}}
