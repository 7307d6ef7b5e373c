"""Inbound adapters by channel type."""

from __future__ import annotations

from agentbus.services.ingress.channels.base import InboundAdapter
from agentbus.services.ingress.channels.dingtalk import DingTalkInbound
from agentbus.services.ingress.channels.feishu import FeishuInbound
from agentbus.services.ingress.channels.slack import SlackInbound
from agentbus.services.ingress.channels.telegram import TelegramInbound
from agentbus.services.ingress.channels.webhook import WebhookInbound
from agentbus.services.ingress.channels.wecom import WeComInbound

ADAPTERS: dict[str, type[InboundAdapter]] = {
    cls.type: cls
    for cls in (WebhookInbound, FeishuInbound, DingTalkInbound,
                SlackInbound, WeComInbound, TelegramInbound)
}
