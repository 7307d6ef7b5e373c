"""Egress's row of the event map (see ``agentbus.asyncapi``; checked against the handler table at start)."""

from agentbus.events import ConfigChanged, DeliveryCompleted, Event, ReplyGenerated, ReplyProgress

SUBSCRIBES: tuple[type[Event], ...] = (ReplyGenerated, ReplyProgress)
PUBLISHES: tuple[type[Event], ...] = (DeliveryCompleted, ConfigChanged)

# every service follows the configuration's topic, and seeds it from its file when it is empty
FOLLOWS: tuple[type[Event], ...] = (ConfigChanged,)
