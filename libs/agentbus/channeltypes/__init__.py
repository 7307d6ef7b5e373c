"""Channel configuration types. Adding a channel is a config type here plus an ingress and an egress
adapter module registered under the same ``type``."""

from __future__ import annotations

from agentbus.channeltypes.api import ApiChannel
from agentbus.channeltypes.base import ChannelBase, EnvRef
from agentbus.channeltypes.dingtalk import DingTalkChannel
from agentbus.channeltypes.feishu import FeishuChannel
from agentbus.channeltypes.slack import SlackChannel
from agentbus.channeltypes.telegram import TelegramChannel
from agentbus.channeltypes.webhook import WebhookChannel
from agentbus.channeltypes.wecom import WeComChannel

CHANNEL_TYPES: list[type[ChannelBase]] = [WebhookChannel]

__all__ = ["CHANNEL_TYPES", "ApiChannel", "ChannelBase", "EnvRef", "WebhookChannel"]
CHANNEL_TYPES.append(FeishuChannel)
CHANNEL_TYPES.append(DingTalkChannel)
CHANNEL_TYPES.append(SlackChannel)
CHANNEL_TYPES.append(WeComChannel)
CHANNEL_TYPES.append(TelegramChannel)
CHANNEL_TYPES.append(ApiChannel)
