"""Memory's row of the event map (see ``agentbus.asyncapi``; checked against the handler table at start)."""

from agentbus.events import ContextAssembled, Event, JobTriggered, MemoryRequested, MessageReceived, ReplyGenerated

SUBSCRIBES: tuple[type[Event], ...] = (MessageReceived, JobTriggered, ReplyGenerated, MemoryRequested)
PUBLISHES: tuple[type[Event], ...] = (ContextAssembled,)
