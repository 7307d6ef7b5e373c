"""DingTalk: an enterprise-internal app robot (HTTP message receiving or Stream mode, replies through the
session webhook or the robot OpenAPI), the optional encrypted HTTP event callback, and custom group robots
for pushes."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from agentbus.channeltypes.base import ChannelBase, EnvRef, Strict


class DingTalkCustomRobot(Strict):
    """A custom group robot (自定义机器人): its webhook ``access_token`` and its 加签 ``SEC...`` secret."""

    access_token: EnvRef
    secret: EnvRef | None = None


class DingTalkChannel(ChannelBase):
    type: Literal["dingtalk"]
    stream_capable: ClassVar[bool] = True
    editable: ClassVar[bool] = True  # progress: stream, through the app robot's interactive card
    # the app's credentials (AppKey = Client ID, AppSecret = Client Secret): verify robot messages, get tokens
    app_key: EnvRef | None = None
    app_secret: EnvRef | None = None
    robot_code: str | None = Field(default=None, description="the robot's code; defaults to the app key")
    # HTTP event callback encryption (事件订阅): token and aes_key from the developer console
    callback_token: EnvRef | None = None
    callback_aes_key: EnvRef | None = None
    callback_owner_key: str | None = Field(
        default=None,
        description="receive id inside encrypted callbacks: the app key (default) or the corp id",
    )
    # chat ids served by custom group robots: replies and jobs for these chats go through the robot's webhook
    custom_robots: dict[str, DingTalkCustomRobot] = Field(default_factory=dict)
    api_base_url: str = "https://api.dingtalk.com"
    oapi_base_url: str = "https://oapi.dingtalk.com"
    # requests whose timestamp is further than this from now are refused (DingTalk documents one hour)
    timestamp_window_s: int = Field(default=3600, ge=1, le=86400)
    # a session webhook this close to its expiry is not used any more: the OpenAPI is used instead
    session_webhook_margin_s: int = Field(default=60, ge=0, le=3600)
    markdown_title: str | None = Field(default=None, max_length=64)
    # stream mode: where ``/v1.0/gateway/connections/open`` is called (default: api_base_url)
    stream_base_url: str | None = None
    # stream mode: seconds between our WebSocket pings; a link that answers none within half of it is dropped
    socket_ping_interval_s: float = Field(default=30.0, gt=0, le=300)

    @model_validator(mode="after")
    def _consistent(self) -> DingTalkChannel:
        if (self.app_key is None) != (self.app_secret is None):
            raise ValueError("app_key and app_secret go together")
        if (self.callback_token is None) != (self.callback_aes_key is None):
            raise ValueError("callback_token and callback_aes_key go together")
        if self.callback_token is not None and self.app_key is None and not self.callback_owner_key:
            raise ValueError("callback_owner_key is needed when there is no app_key")
        if self.app_secret is None and not self.custom_robots:
            raise ValueError("configure app_key/app_secret, custom_robots, or both")
        if self.mode == "stream" and self.app_secret is None:
            raise ValueError("dingtalk channel in stream mode needs app_key and app_secret (Client ID/Secret)")
        if self.progress == "stream" and self.app_secret is None:
            raise ValueError("progress: stream edits an interactive card of the app robot: set app_key and"
                             " app_secret (custom robots cannot edit; use progress: off)")
        for url in (self.api_base_url, self.oapi_base_url, self.stream_base_url or self.api_base_url):
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"base URL {url!r} must be http(s)")
        return self

    @property
    def stream_base(self) -> str:
        return (self.stream_base_url or self.api_base_url).rstrip("/")
