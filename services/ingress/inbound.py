"""What a channel adapter hands ingress: the platform's answer and at most one normalised message.

These are plain values, kept apart from the adapters so that accepting a message (policy, de-duplication,
publish) depends on what every channel produces, not on any one channel's module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from agentbus.events import Action, Chat, Sender


@dataclass(frozen=True)
class Answer:
    """What ingress answers the platform (after publishing, when there is a message)."""

    status: int = 200
    body: bytes = b'{"ok":true}'
    content_type: str = "application/json"


@dataclass(frozen=True)
class MediaItem:
    """An attachment as the platform announced it: what it says it is, and how to fetch it (``source`` holds
    the platform's locator: a Telegram file_id, a Slack download URL, a Feishu file_key, a DingTalk
    downloadCode). Ingress downloads it before publishing; the event only ever holds the blob reference."""

    kind: Literal["image", "file", "audio", "video"]
    source: dict[str, Any]
    name: str | None = None
    content_type: str | None = None
    size: int | None = None
    transcript: str | None = None  # a voice message's text, where the platform recognised it


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
    attachments: tuple[MediaItem, ...] = ()
    action: Action | None = None  # a press of a button of the bot's card: addressed to the bot, mention or not


@dataclass(frozen=True)
class Inbound:
    answer: Answer = Answer()
    message: InboundMessage | None = None
    dedupe_id: str | None = None  # the platform's event id: retries carrying it are published once
    note: str = ""  # why nothing is published (handshake, ignored event type, ...)
