"""A reply's card and images as Block Kit ``blocks``; ``text`` stays the notification's fallback.

The reply's text is a ``section`` (split at 3000 characters, Slack's limit for one), the card's title a
``header``, its body a second section where it differs from the reply, images ``image`` blocks Slack fetches
by URL, the buttons one ``actions`` block whose ``button``\\ s carry the value a press sends back
(``block_actions``, read by ingress). Other files cannot go by URL: ``files.upload`` / ``files.uploadV2`` want
the bytes, which egress does not hold, so they are links in the text (``parts_text``).
"""

from __future__ import annotations

from typing import Any

from agentbus.events import Attachment, ReplyGeneratedData
from agentbus.services.egress.channels.parts_text import attachment_lines

MAX_SECTION = 3000
MAX_BLOCKS = 50
ACTIONS_BLOCK = "agentbus_card"
BUTTON_PREFIX = "agentbus_button_"  # + the button's index: action_id is unique within the message


def images(reply: ReplyGeneratedData) -> list[Attachment]:
    return [a for a in reply.attachments if a.kind == "image" and a.url]


def file_lines(reply: ReplyGeneratedData) -> list[str]:
    """The attachments that are not image blocks, as "name: url" lines."""
    return attachment_lines([a for a in reply.attachments if not (a.kind == "image" and a.url)])


def _sections(text: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    rest = text.strip()
    while rest:
        cut = len(rest) if len(rest) <= MAX_SECTION else (rest.rfind("\n", 0, MAX_SECTION) + 1 or MAX_SECTION)
        out.append({"type": "section", "text": {"type": "mrkdwn", "text": rest[:cut]}})
        rest = rest[cut:].strip()
    return out


def blocks(reply: ReplyGeneratedData, text: str, card_text: str | None) -> list[dict[str, Any]] | None:
    """The message's blocks (``text``: the reply as it goes out in mrkdwn; ``card_text``: the card's body in
    mrkdwn), or ``None`` when the reply has neither a card nor an image, so it goes out as before."""
    card, pictures = reply.card, images(reply)
    if card is None and not pictures:
        return None
    out: list[dict[str, Any]] = []
    if card is not None and card.title and card.title.strip():
        out.append({"type": "header", "text": {"type": "plain_text", "text": card.title.strip()[:150], "emoji": True}})
    out += _sections(text)
    if card is not None and card_text and card.text.strip() != reply.text.strip():
        out += _sections(card_text)
    out += [{"type": "image", "image_url": a.url, "alt_text": (a.name or "image")[:2000]} for a in pictures]
    if card is not None and card.buttons:
        elements = []
        for i, b in enumerate(card.buttons):
            button: dict[str, Any] = {"type": "button", "action_id": f"{BUTTON_PREFIX}{i}",
                                      "text": {"type": "plain_text", "text": b.label, "emoji": True}, "value": b.value}
            if b.style != "default":
                button["style"] = b.style
            elements.append(button)
        out = out[:MAX_BLOCKS - 1] + [{"type": "actions", "block_id": ACTIONS_BLOCK, "elements": elements}]
    return out[:MAX_BLOCKS]
