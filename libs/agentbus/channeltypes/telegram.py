"""Telegram: a bot (Bot API) receiving updates by webhook and answering with ``sendMessage``."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from agentbus.channeltypes.base import ChannelBase, EnvRef


class TelegramChannel(ChannelBase):
    type: Literal["telegram"]
    stream_capable: ClassVar[bool] = True
    editable: ClassVar[bool] = True  # progress: stream (editMessageText / chat.update)
    api_base: str = Field(default="https://api.telegram.org", pattern=r"^https?://[^\s/]+(:\d+)?(/[^\s]*)?$")
    bot_token: EnvRef  # from @BotFather: "<bot id>:<secret>"
    # the secret_token given to setWebhook, echoed in X-Telegram-Bot-Api-Secret-Token (1-256 of A-Z a-z 0-9 _ -);
    # not used in mode: stream (getUpdates long polling, authenticated by the bot token alone)
    secret_token: EnvRef | None = None
    # mode: stream: seconds one getUpdates long poll waits for updates (Telegram allows up to 50)
    poll_timeout_s: int = Field(default=25, ge=1, le=50)
    # an edited message (edited_message) is ignored, or answered as a new question
    edits: Literal["ignore", "answer"] = "ignore"
    # the bot's @username (without the @): how a mention of the bot is recognised in groups
    bot_username: str | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9_]{3,31}$")
    # groups: a reply to one of the bot's messages counts as addressing the bot
    reply_to_bot_is_mention: bool = True
    # answer as a reply to the message (reply_parameters), or as a plain message in the chat
    reply_to_message: bool = True
    # markdown replies are sent with parse_mode MarkdownV2 (converted and escaped), or as plain text
    markdown_as: Literal["markdown_v2", "text"] = "markdown_v2"
    # Bot API limits: about 20 messages per minute in one group, 30 per second overall
    group_rate_per_minute: int = Field(default=20, ge=1)
    global_rate_per_second: int = Field(default=30, ge=1)

    @model_validator(mode="after")
    def _secret_for_webhooks(self) -> TelegramChannel:
        if self.mode == "webhook" and self.secret_token is None:
            raise ValueError("secret_token is required in mode: webhook (the secret_token given to setWebhook)")
        return self

    @property
    def base(self) -> str:
        return self.api_base.rstrip("/")
