"""What every channel instance in ``agentbus.yaml`` has, and how credentials are referenced."""

from __future__ import annotations

import os
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_MEDIA_TYPES = (
    "image/*", "audio/*", "text/*", "application/pdf", "application/msword", "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint", "application/vnd.openxmlformats-officedocument.*", "application/rtf",
    "application/json",
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvRef(Strict):
    """A credential read from the environment at start-up (``{env: NAME, default: ...}``)."""

    env: str
    default: str | None = None

    def resolve(self) -> str | None:
        return os.environ.get(self.env, self.default)

    def value(self) -> str:
        v = self.resolve()
        if v is None:
            raise LookupError(f"environment variable {self.env} is not set")
        return v


class ChannelBase(Strict):
    id: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
    type: str
    # how events arrive: the platform calls our webhook URL, or ingress holds an outbound long connection
    # (DingTalk Stream, Feishu long connection, Slack Socket Mode, Telegram getUpdates) and needs no public URL
    mode: Literal["webhook", "stream"] = "webhook"
    # whether the platform offers a long connection (set by the channel types that do)
    stream_capable: ClassVar[bool] = False
    tenant: str
    agent: str
    # group chats: answer only when the bot is mentioned
    require_mention_in_groups: bool = True
    # direct messages: when set, only these sender ids are served; others get `refusal_text`
    allowlist: tuple[str, ...] | None = None
    refusal_text: str = "Sorry, I am not able to help you here. Please ask an administrator for access."
    # group chats: a reply to a person's message addresses them the platform's way (an @-mention, or a reply
    # to their message); pushes of scheduled jobs have no asker and address nobody
    mention_asker: bool = True
    # outbound pushes per target per minute (None: the channel type's documented default)
    rate_limit_per_minute: int | None = None
    # while the agent works: nothing, the platform's typing indicator, or the answer streamed into a message
    # edited as it grows (only where the platform lets a bot edit its message: ``editable``)
    progress: Literal["off", "typing", "stream"] = "typing"
    editable: ClassVar[bool] = False
    # media sent to the bot: downloaded through the platform's API before the message is published, at most
    # this many bytes each, within this many seconds, and only of these content types ("type/*" matches a
    # family); anything else is published with the attachment's error set, never dropped
    media_max_bytes: int = Field(default=20 * 1024 * 1024, ge=0)
    media_timeout_s: float = Field(default=10.0, gt=0, le=120)
    media_types: tuple[str, ...] = DEFAULT_MEDIA_TYPES

    @model_validator(mode="after")
    def _mode_supported(self) -> ChannelBase:
        if self.mode == "stream" and not self.stream_capable:
            raise ValueError(f"channel type {self.type!r} has no long-connection mode: use mode: webhook")
        if self.progress == "stream" and not self.editable:
            raise ValueError(f"channel type {self.type!r} cannot edit a sent message: use progress: typing or off")
        return self
