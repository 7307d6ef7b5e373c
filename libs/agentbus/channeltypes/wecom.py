"""WeCom (企业微信): a self-built app receiving encrypted callbacks and replying through ``message/send``,
plus group robots (群机器人) for pushes into group chats."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from agentbus.channeltypes.base import ChannelBase, EnvRef


class WeComChannel(ChannelBase):
    type: Literal["wecom"]
    corp_id: str = Field(min_length=1, max_length=64, description="企业ID; also the callback's receive id")
    agent_id: int | None = Field(default=None, description="the app's AgentId")
    secret: EnvRef | None = Field(default=None, description="the app's Secret (corpsecret for gettoken)")
    # callback settings of the app (接收消息 → 设置API接收): Token and EncodingAESKey
    token: EnvRef | None = None
    encoding_aes_key: EnvRef | None = None
    # chat ids served by group robots: their value is the robot's webhook key
    group_robots: dict[str, EnvRef] = Field(default_factory=dict)
    api_base_url: str = "https://qyapi.weixin.qq.com"
    # callbacks whose timestamp is further than this from now are refused
    timestamp_window_s: int = Field(default=3600, ge=1, le=86400)
    # message/send's enable_duplicate_check: identical content to the same user within this interval is sent
    # once, which lets an interrupted push be repeated safely (at most 4 hours)
    duplicate_check_interval_s: int | None = Field(default=None, ge=1, le=14400)

    @model_validator(mode="after")
    def _consistent(self) -> WeComChannel:
        if (self.token is None) != (self.encoding_aes_key is None):
            raise ValueError("token and encoding_aes_key go together")
        if self.secret is not None and self.agent_id is None:
            raise ValueError("agent_id is needed with secret")
        if self.secret is None and not self.group_robots:
            raise ValueError("configure secret and agent_id, group_robots, or both")
        if not self.api_base_url.startswith(("https://", "http://")):
            raise ValueError(f"base URL {self.api_base_url!r} must be http(s)")
        return self
