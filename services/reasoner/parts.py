"""What a reply carries besides its text, from the loop's tool calls (pure: no I/O, no service ports).

The ``card`` and ``attach`` tools (``tools/card.py``) only say yes to the model; the card and the attachments
are read back here from the calls the loop recorded, so a reused or replayed answer carries the same parts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentbus.events import Attachment, Button, Card

if TYPE_CHECKING:
    from agentbus.services.reasoner.loop import ToolOutcome

CARD, ATTACH = "card", "attach"
MAX_ATTACHMENTS = 10


class CardArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(default=None, max_length=100, description="a short heading of the card")
    text: str = Field(default="", max_length=4000, description="the card's body; leave empty to use the reply")
    buttons: list[Button] = Field(min_length=1, max_length=10, description="the choices offered; a press sends "
                                  "the button's value back as the user's next message")


class AttachArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(pattern=r"^https://\S+$", max_length=2000, description="an https URL the chat platform "
                     "can fetch the image or file from")
    kind: Literal["image", "file"] = "image"
    name: str | None = Field(default=None, max_length=200, description="file name shown to the user")


def reply_parts(outcomes: Sequence[ToolOutcome]) -> tuple[Card | None, tuple[Attachment, ...]]:
    """The card (the last one asked for) and the attachments (in order) the loop's tool calls asked for;
    calls whose arguments did not validate were errors the model was told about, and are left out."""
    card: Card | None = None
    attachments: list[Attachment] = []
    for o in outcomes:
        if o.is_error:
            continue
        raw = o.call.arguments
        try:
            args = orjson.loads(raw) if isinstance(raw, str) else raw
        except orjson.JSONDecodeError:
            continue
        try:
            if o.call.name == CARD:
                a = CardArgs.model_validate(args)
                card = Card(title=a.title, text=a.text, buttons=tuple(a.buttons))
            elif o.call.name == ATTACH and len(attachments) < MAX_ATTACHMENTS:
                b = AttachArgs.model_validate(args)
                attachments.append(Attachment(kind=b.kind, url=b.url, name=b.name))
        except ValidationError:
            continue
    return card, tuple(attachments)
