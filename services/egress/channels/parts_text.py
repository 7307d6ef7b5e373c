"""A reply's card and attachments as plain text, for channels (or targets) that cannot show them natively.

A platform without buttons a bot can receive a press of (a WeCom group robot, a generic webhook's reader, a
DingTalk group) still gets the choices: the card's text and one line per button saying what to answer, so the
person's next message carries the button's value and the agent reads it as a press. Attachments a platform
cannot fetch by URL become a line with their name and URL. The same function serves every such channel, so the
wording is the same everywhere and a test of one covers the form.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentbus.events import Attachment, Card, ReplyGeneratedData


def card_lines(card: Card) -> list[str]:
    """The card's title, body and one line per button (its label and the value to answer with)."""
    lines: list[str] = []
    if card.title:
        lines.append(card.title)
    if card.text:
        lines.append(card.text)
    for n, button in enumerate(card.buttons, start=1):
        say = f" (answer: {button.value})" if button.value != button.label else ""
        lines.append(f"{n}. {button.label}{say}")
    return lines


def attachment_lines(attachments: Sequence[Attachment]) -> list[str]:
    """One line per attachment that has a URL: its name (or kind) and the URL."""
    return [f"{a.name or a.kind}: {a.url}" for a in attachments if a.url]


def text_with_parts(reply: ReplyGeneratedData, *, card: bool = True, attachments: bool = True) -> str:
    """The reply's text followed by the parts the channel cannot render (blank line between blocks); a card
    whose text repeats the reply's is not repeated."""
    blocks = [reply.text.strip()] if reply.text.strip() else []
    if card and reply.card is not None:
        c = reply.card
        if c.text.strip() and c.text.strip() == reply.text.strip():
            c = c.model_copy(update={"text": ""})
        lines = card_lines(c)
        if lines:
            blocks.append("\n".join(lines))
    if attachments:
        lines = attachment_lines(reply.attachments)
        if lines:
            blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
