"""Egress's row of the event map (see ``agentbus.asyncapi``; checked against the handler table at start)."""

from agentbus.events import DeliveryCompleted, Event, ReplyGenerated, ReplyProgress

SUBSCRIBES: tuple[type[Event], ...] = (ReplyGenerated, ReplyProgress)
PUBLISHES: tuple[type[Event], ...] = (DeliveryCompleted,)
