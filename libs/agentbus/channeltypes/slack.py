"""Slack: a Slack app's bot, Events API in (signed requests) or Socket Mode, ``chat.postMessage`` out."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from agentbus.channeltypes.base import ChannelBase, EnvRef


class SlackChannel(ChannelBase):
    type: Literal["slack"]
    stream_capable: ClassVar[bool] = True
    editable: ClassVar[bool] = True  # progress: stream (editMessageText / chat.update)
    # progress: typing: the assistant thread status shown while the agent works
    typing_status: str = Field(default="is thinking…", min_length=1, max_length=100)
    api_base: str = Field(default="https://slack.com/api", pattern=r"^https?://[^\s/]+(:\d+)?(/[^\s]*)?$")
    # Basic Information → App Credentials → Signing Secret (webhook mode: every request is signed with it)
    signing_secret: EnvRef | None = None
    bot_token: EnvRef  # OAuth & Permissions → Bot User OAuth Token (xoxb-...)
    # stream mode (Socket Mode): Basic Information → App-Level Tokens, scope connections:write (xapp-...)
    app_token: EnvRef | None = None
    # stream mode: seconds between our WebSocket pings; a link that answers none within half of it is dropped
    socket_ping_interval_s: float = Field(default=10.0, gt=0, le=300)
    # the bot's user id (U...); when unset it is taken from each event's `authorizations`
    bot_user_id: str | None = None
    # requests whose X-Slack-Request-Timestamp is further from now are refused (Slack: five minutes)
    max_clock_skew_s: int = Field(default=300, ge=1)
    # answer top-level channel messages in a thread under them (messages in a thread are always answered there)
    reply_in_thread: bool = False
    # markdown replies: converted to Slack's mrkdwn in `text`, or sent as-is in `markdown_text`
    markdown_as: Literal["mrkdwn", "markdown_text"] = "mrkdwn"
    # an edited message (subtype message_changed): acknowledged and dropped, or answered as a new question
    edits: Literal["ignore", "answer"] = "ignore"

    @model_validator(mode="after")
    def _credentials_for_mode(self) -> SlackChannel:
        if self.mode == "webhook" and self.signing_secret is None:
            raise ValueError("slack channel in webhook mode needs signing_secret")
        if self.mode == "stream" and self.app_token is None:
            raise ValueError("slack channel in stream mode (Socket Mode) needs app_token (xapp-...)")
        return self

    @property
    def base(self) -> str:
        return self.api_base.rstrip("/")
