"""Long connections to platforms that push events over an outbound connection (no public URL needed).

A channel instance with ``mode: stream`` is served by one of these instead of its webhook route. The
classes are named here by import path, so that a channel type's connection is imported only when one is
configured (each pulls in its platform's client library).
"""

from __future__ import annotations

import importlib

from agentbus.services.ingress.longconn.base import LongConnection

CONNECTIONS: dict[str, str] = {
    "dingtalk": "agentbus.services.ingress.longconn.dingtalk:DingTalkStream",
    "feishu": "agentbus.services.ingress.longconn.feishu:FeishuLongConnection",
    "slack": "agentbus.services.ingress.longconn.slack:SlackSocketMode",
    "telegram": "agentbus.services.ingress.longconn.telegram:TelegramPolling",
}


def connection_class(channel_type: str) -> type[LongConnection]:
    """The long-connection class of a channel type; ``LookupError`` when the type has none."""
    path = CONNECTIONS.get(channel_type)
    if path is None:
        raise LookupError(f"channel type {channel_type!r} has no long-connection mode")
    module, _, name = path.partition(":")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, LongConnection)):
        raise TypeError(f"{path} is not a LongConnection")
    return cls
