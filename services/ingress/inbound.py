"""What a channel adapter hands ingress: the platform's answer and at most one normalised message.

These are plain values, kept apart from the adapters so that accepting a message (policy, de-duplication,
publish) depends on what every channel produces, not on any one channel's module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentbus.events import Chat, Sender


@dataclass(frozen=True)
class Answer:
    """What ingress answers the platform (after publishing, when there is a message)."""

    status: int = 200
    body: bytes = b'{"ok":true}'
    content_type: str = "application/json"


@dataclass(frozen=True)
class InboundMessage:
    platform_message_id: str
    sender: Sender
    chat: Chat
    text: str
    mentions: tuple[str, ...] = ()
    mentioned_bot: bool = False
    reply_route: dict[str, Any] = field(default_factory=dict)
    from_self: bool = False  # the bot's own message echoed back: ignored


@dataclass(frozen=True)
class Inbound:
    answer: Answer = Answer()
    message: InboundMessage | None = None
    dedupe_id: str | None = None  # the platform's event id: retries carrying it are published once
    note: str = ""  # why nothing is published (handshake, ignored event type, ...)
