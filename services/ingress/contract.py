"""Ingress's row of the event map: what it publishes (it consumes nothing through a consumer group).

Read by ``agentbus schemas`` for the AsyncAPI document; ``serve`` refuses to start a service whose handler
table differs from its contract, so the document cannot drift from what runs.
"""

from agentbus.events import DeadLettered, Event, MessageReceived

SUBSCRIBES: tuple[type[Event], ...] = ()
PUBLISHES: tuple[type[Event], ...] = (MessageReceived,)
FOLLOWS: tuple[type[Event], ...] = (DeadLettered,)  # read without a consumer group (the dead-letter gauge)
