"""A DingTalk reply's card and images in DingTalk's own message types, for both ways a reply goes out.

Webhook-style sends (session webhook, custom robot) take ``msgtype: actionCard`` with ``btns`` (one button:
``singleTitle``/``singleURL``); the robot OpenAPI takes the templates ``sampleActionCard`` (one button) and
``sampleActionCard2`` to ``sampleActionCard5`` (2 to 5 buttons, one above the other), and a card with more
buttons goes as ``sampleMarkdown`` with one link a button. A button's URL is
``dtmd://dingtalkclient/sendMessage?content=<value>``: pressing it makes the person's client send the value as
their own message to the robot, which is how the press comes back (an ordinary message whose text is the
value). In a group that message does not mention the robot, and DingTalk delivers only group messages that do,
so a group gets the card as text (``parts_text``) instead and the person answers with a mention.

Images go as ``markdown`` with ``![name](url)`` (webhook style) or ``sampleImageMsg`` with ``photoURL``:
DingTalk fetches the URL itself. Other files are lines with their URL in the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from agentbus.events import Attachment, Button, Card, ReplyGeneratedData
from agentbus.services.egress.channels.parts_text import text_with_parts

OPENAPI_MAX_BUTTONS = 5  # sampleActionCard2..5: the templates with one button under another


def press_url(value: str) -> str:
    """The link that sends ``value`` as the person's next message to the robot."""
    return "dtmd://dingtalkclient/sendMessage?content=" + quote(value, safe="")


@dataclass(frozen=True)
class Part:
    """One message of a reply: a piece of text, a card (its title, markdown body and buttons) or an image."""

    text: str = ""
    card_title: str | None = None
    buttons: tuple[Button, ...] = ()
    image: Attachment | None = None


def is_group(reply: ReplyGeneratedData) -> bool:
    return (reply.reply_route.get("conversation_type") or reply.chat.type) == "group"


def reply_parts(reply: ReplyGeneratedData, split: Any, max_bytes: int) -> list[Part]:
    """The messages of a reply, in order. Without a card and attachments: the text in parts, as always.
    ``split(text, max_bytes)`` cuts a text into parts."""
    if reply.card is None and not reply.attachments:
        return [Part(text=t) for t in split(reply.text, max_bytes)]
    images = tuple(a for a in reply.attachments if a.kind == "image" and a.url)
    others = tuple(a for a in reply.attachments if a not in images)
    card: Card | None = reply.card
    native = card is not None and bool(card.buttons) and not is_group(reply)
    text = text_with_parts(reply.model_copy(update={"attachments": others}), card=not native)
    out: list[Part] = []
    if native and card is not None:
        body = text
        extra = card.text.strip()
        if extra and extra != reply.text.strip():
            body = f"{body}\n\n{extra}" if body else extra
        if len(body.encode()) > max_bytes:  # a long answer goes first as text, the card after it
            out += [Part(text=t) for t in split(text, max_bytes)]
            body = extra or card.title or "…"
        out.append(Part(text=body, card_title=card.title, buttons=card.buttons))
    elif text:
        out += [Part(text=t) for t in split(text, max_bytes)]
    out += [Part(image=a) for a in images]
    return out


def webhook_card(title: str, text: str, buttons: tuple[Button, ...]) -> dict[str, Any]:
    """``msgtype: actionCard`` of the session webhook and custom robots."""
    card: dict[str, Any] = {"title": title, "text": text}
    if len(buttons) == 1:
        card.update(singleTitle=buttons[0].label, singleURL=press_url(buttons[0].value))
    else:
        card.update(btnOrientation="0",
                    btns=[{"title": b.label, "actionURL": press_url(b.value)} for b in buttons])
    return {"msgtype": "actionCard", "actionCard": card}


def webhook_image(image: Attachment) -> dict[str, Any]:
    name = (image.name or "image").replace("]", "")
    return {"msgtype": "markdown", "markdown": {"title": name[:32], "text": f"![{name}]({image.url})"}}


def openapi_card(title: str, text: str, buttons: tuple[Button, ...]) -> tuple[str, dict[str, str]]:
    """(msgKey, msgParam) of the robot OpenAPI for a card."""
    if len(buttons) == 1:
        return "sampleActionCard", {"title": title, "text": text, "singleTitle": buttons[0].label,
                                    "singleURL": press_url(buttons[0].value)}
    if len(buttons) <= OPENAPI_MAX_BUTTONS:
        param = {"title": title, "text": text}
        for i, b in enumerate(buttons, start=1):
            param[f"actionTitle{i}"] = b.label
            param[f"actionURL{i}"] = press_url(b.value)
        return f"sampleActionCard{len(buttons)}", param
    links = "\n".join(f"- [{b.label.replace(']', '')}]({press_url(b.value)})" for b in buttons)
    return "sampleMarkdown", {"title": title, "text": f"{text}\n\n{links}"}


def openapi_image(image: Attachment) -> tuple[str, dict[str, str]]:
    return "sampleImageMsg", {"photoURL": image.url or ""}
