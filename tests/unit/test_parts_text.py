"""The plain-text form of a card and attachments, for channels that cannot render them."""

from __future__ import annotations

from agentbus.events import Attachment, Button, Card, Chat, ReplyGeneratedData
from agentbus.services.egress.channels.parts_text import text_with_parts


def _reply(text: str, card: Card | None = None, attachments: tuple[Attachment, ...] = ()) -> ReplyGeneratedData:
    return ReplyGeneratedData(agent="a", channel="c", channel_type="webhook", chat=Chat(id="x"), text=text,
                              model="m", card=card, attachments=attachments)


def test_plain_reply_is_unchanged() -> None:
    assert text_with_parts(_reply("Hello there")) == "Hello there"


def test_card_buttons_say_what_to_answer() -> None:
    card = Card(title="Deploy?", text="Release 1.4 is ready.",
                buttons=(Button(label="Yes", value="Yes"), Button(label="Not now", value="postpone")))
    assert text_with_parts(_reply("I can deploy it.", card)) == (
        "I can deploy it.\n\nDeploy?\nRelease 1.4 is ready.\n1. Yes\n2. Not now (answer: postpone)")


def test_card_text_equal_to_reply_is_not_repeated() -> None:
    card = Card(text="Pick one", buttons=(Button(label="A", value="a"),))
    assert text_with_parts(_reply("Pick one", card)) == "Pick one\n\n1. A (answer: a)"


def test_attachments_become_links_and_can_be_left_out() -> None:
    atts = (Attachment(kind="image", url="https://example.com/chart.png", name="chart.png"),
            Attachment(kind="file", url="https://example.com/r.pdf"))
    reply = _reply("Here it is", attachments=atts)
    assert text_with_parts(reply) == "Here it is\n\nchart.png: https://example.com/chart.png\nfile: https://example.com/r.pdf"
    assert text_with_parts(reply, attachments=False) == "Here it is"
