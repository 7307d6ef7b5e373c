"""``card`` and ``attach``: the model gives its reply buttons, an image or a file.

Neither tool acts on the world: what the model asked for is read back from the loop's recorded tool calls when
the reply is built (``reply_parts``), so an answer reused from the ledger or replayed carries the same card and
attachments as the first, and nothing about them needs storing beyond the calls themselves. Each channel
renders a card its platform's way (DingTalk ActionCard, Feishu interactive card, Slack Block Kit, Telegram
inline keyboard; numbered choices in the text where the platform has no buttons). A press of a button comes
back as a message of the same conversation whose text is the button's value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentbus.events import Attachment, Button, Card
from agentbus.services.reasoner.tools.base import ToolContext, ToolResult, TypedTool

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


class CardTool(TypedTool[CardArgs]):
    name: ClassVar[str] = CARD
    description: ClassVar[str] = ("Send your reply as a card with buttons the user can press (for example to "
                                  "confirm, or to choose one of a few options). Call it once, then write the "
                                  "reply text; the last card asked for is the one sent.")
    side_effects: ClassVar[bool] = False
    args: ClassVar[type[BaseModel]] = CardArgs

    async def run(self, args: CardArgs, ctx: ToolContext) -> ToolResult:
        labels = ", ".join(b.label for b in args.buttons)
        return ToolResult(f"The card with the buttons {labels} will be sent with your reply. Now write the reply.")


class AttachTool(TypedTool[AttachArgs]):
    name: ClassVar[str] = ATTACH
    description: ClassVar[str] = ("Send an image or a file with your reply, by its https URL (the chat platform "
                                  "fetches it). Up to 10 per reply.")
    side_effects: ClassVar[bool] = False
    args: ClassVar[type[BaseModel]] = AttachArgs

    async def run(self, args: AttachArgs, ctx: ToolContext) -> ToolResult:
        return ToolResult(f"The {args.kind} {args.name or args.url} will be sent with your reply.")


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
