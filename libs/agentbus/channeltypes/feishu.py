"""Feishu / Lark: an app bot (event subscription v2 in, IM API out) and/or a custom group bot webhook.

Feishu (China) and Lark (international) are the same platform on two hosts, chosen by ``api_base``:
``https://open.feishu.cn`` or ``https://open.larksuite.com``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from agentbus.channeltypes.base import ChannelBase, EnvRef, Strict


class FeishuBotWebhook(Strict):
    """A custom bot added to one group: ``POST <api_base>/open-apis/bot/v2/hook/<token>``."""

    token: EnvRef  # the last path segment of the webhook address
    secret: EnvRef | None = None  # set when the bot's "signature verification" security setting is on


class FeishuChannel(ChannelBase):
    type: Literal["feishu"]
    stream_capable: ClassVar[bool] = True
    editable: ClassVar[bool] = True  # the app bot PATCHes a card it sent (the custom bot webhook cannot)
    api_base: str = Field(default="https://open.feishu.cn", pattern=r"^https?://[^\s/]+(:\d+)?(/[^\s]*)?$")
    # app credentials: tenant_access_token for the IM API
    app_id: EnvRef | None = None
    app_secret: EnvRef | None = None
    # event subscription security settings ("Encrypt Key" / "Verification Token")
    verification_token: EnvRef | None = None
    encrypt_key: EnvRef | None = None
    # the bot's open_id (ou_...): how a mention of this bot is told from mentions of others
    bot_open_id: str | None = None
    # signed requests stamped further in the future than this are refused; 0 turns the check off
    max_clock_skew_s: int = Field(default=300, ge=0)
    # signed requests older than this are refused. A retry keeps its first attempt's stamp and Feishu retries
    # for about 7.1 h (15 s, 5 min, 1 h, 6 h), so the default covers the whole schedule; 0 turns it off
    max_event_age_s: int = Field(default=8 * 3600, ge=0)
    # answer with the reply endpoint (quoting the message) or as a new message in the chat
    reply_mode: Literal["reply", "send"] = "reply"
    # reply endpoint: answer inside a thread (messages already in a thread are always answered there)
    reply_in_thread: bool = False
    # how markdown replies are rendered: rich text (post with an md element) or a message card
    markdown_as: Literal["post", "interactive"] = "post"
    # progress: typing shows this reaction on the person's message while the agent works (Feishu has no typing
    # indicator); an emoji_type of Feishu's emoji list
    typing_emoji: str = Field(default="Typing", pattern=r"^[A-Za-z0-9_]{1,40}$")
    # optional custom group bot: used when there are no app credentials, or when reply_route.via == "bot_webhook"
    bot_webhook: FeishuBotWebhook | None = None

    @model_validator(mode="after")
    def _credentials(self) -> FeishuChannel:
        if (self.app_id is None) != (self.app_secret is None):
            raise ValueError("app_id and app_secret are set together")
        if self.app_id is None and self.bot_webhook is None:
            raise ValueError("set app_id and app_secret (app bot), or bot_webhook (custom bot), or both")
        if self.mode == "stream" and self.app_id is None:
            raise ValueError("mode: stream opens the long connection with the app's credentials: set app_id and"
                             " app_secret")
        if self.progress == "stream" and self.app_id is None:
            raise ValueError("progress: stream edits a card the app bot sent: set app_id and app_secret (the custom"
                             " bot webhook cannot edit; use progress: off or typing)")
        return self

    @property
    def base(self) -> str:
        return self.api_base.rstrip("/")
