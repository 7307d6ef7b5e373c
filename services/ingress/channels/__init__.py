"""Inbound adapters by channel type."""

from __future__ import annotations

from agentbus.services.ingress.channels.base import InboundAdapter
from agentbus.services.ingress.channels.dingtalk import DingTalkInbound
from agentbus.services.ingress.channels.feishu import FeishuInbound
from agentbus.services.ingress.channels.slack import SlackInbound
from agentbus.services.ingress.channels.telegram import TelegramInbound
from agentbus.services.ingress.channels.webhook import WebhookInbound
from agentbus.services.ingress.channels.wecom import WeComInbound

ADAPTERS: dict[str, type[InboundAdapter]] = {WebhookInbound.type: WebhookInbound}
ADAPTERS[FeishuInbound.type] = FeishuInbound
ADAPTERS[DingTalkInbound.type] = DingTalkInbound
ADAPTERS[SlackInbound.type] = SlackInbound
ADAPTERS[WeComInbound.type] = WeComInbound
ADAPTERS[TelegramInbound.type] = TelegramInbound
