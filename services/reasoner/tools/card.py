"""``card`` and ``attach``: the model gives its reply buttons, an image or a file.

Neither tool acts on the world: what the model asked for is read back from the loop's recorded tool calls when
the reply is built (``reply_parts``), so an answer reused from the ledger or replayed carries the same card and
attachments as the first, and nothing about them needs storing beyond the calls themselves. They travel in
reply.generated v2 (``card``, ``attachments``).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel

from agentbus.services.reasoner.parts import ATTACH, CARD, AttachArgs, CardArgs
from agentbus.services.reasoner.tools.base import ToolContext, ToolResult, TypedTool

__all__ = ["AttachTool", "CardTool"]


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
