"""The scheduler's row of the event map (see ``agentbus.asyncapi``; checked against the handler table at start).

Firings are published by the tick loop from the firings outbox, not by a handler."""

from agentbus.events import ConfigChanged, Event, JobRequested, JobTriggered

SUBSCRIBES: tuple[type[Event], ...] = (JobRequested,)
PUBLISHES: tuple[type[Event], ...] = (JobTriggered, ConfigChanged)

# every service follows the configuration's topic, and seeds it from its file when it is empty
FOLLOWS: tuple[type[Event], ...] = (ConfigChanged,)
