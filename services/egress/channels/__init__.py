"""Outbound adapters by channel type."""

from __future__ import annotations

from agentbus.services.egress.channels.api import ApiOutbound
from agentbus.services.egress.channels.base import OutboundAdapter
from agentbus.services.egress.channels.dingtalk import DingTalkOutbound
from agentbus.services.egress.channels.feishu import FeishuOutbound
from agentbus.services.egress.channels.slack import SlackOutbound
from agentbus.services.egress.channels.telegram import TelegramOutbound
from agentbus.services.egress.channels.webhook import WebhookOutbound
from agentbus.services.egress.channels.wecom import WeComOutbound

ADAPTERS: dict[str, type[OutboundAdapter]] = {
    cls.type: cls
    for cls in (WebhookOutbound, FeishuOutbound, DingTalkOutbound,
                SlackOutbound, WeComOutbound, TelegramOutbound, ApiOutbound)
}
