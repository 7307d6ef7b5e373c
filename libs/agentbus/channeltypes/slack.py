"""Slack: a Slack app's bot, Events API in (signed requests), ``chat.postMessage`` out."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from agentbus.channeltypes.base import ChannelBase, EnvRef


class SlackChannel(ChannelBase):
    type: Literal["slack"]
    stream_capable: ClassVar[bool] = True
    api_base: str = Field(default="https://slack.com/api", pattern=r"^https?://[^\s/]+(:\d+)?(/[^\s]*)?$")
    signing_secret: EnvRef  # Basic Information → App Credentials → Signing Secret
    bot_token: EnvRef  # OAuth & Permissions → Bot User OAuth Token (xoxb-...)
    # the bot's user id (U...); when unset it is taken from each event's `authorizations`
    bot_user_id: str | None = None
    # requests whose X-Slack-Request-Timestamp is further from now are refused (Slack: five minutes)
    max_clock_skew_s: int = Field(default=300, ge=1)
    # answer top-level channel messages in a thread under them (messages in a thread are always answered there)
    reply_in_thread: bool = False
    # markdown replies: converted to Slack's mrkdwn in `text`, or sent as-is in `markdown_text`
    markdown_as: Literal["mrkdwn", "markdown_text"] = "mrkdwn"

    @property
    def base(self) -> str:
        return self.api_base.rstrip("/")
