"""The generic Standard Webhooks channel: signed JSON in, signed JSON pushed out."""

from __future__ import annotations

from typing import Literal

from agentbus.channeltypes.base import ChannelBase, EnvRef


class WebhookChannel(ChannelBase):
    type: Literal["webhook"]
    secret: EnvRef
    push_url: str | None = None
    push_secret: EnvRef | None = None  # defaults to `secret`
