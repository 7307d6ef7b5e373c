"""The reasoner's row of the event map (see ``agentbus.asyncapi``; checked against the handler table at start)."""

from agentbus.events import ContextAssembled, Event, InferenceCompleted, ReplyGenerated, ToolCalled

SUBSCRIBES: tuple[type[Event], ...] = (ContextAssembled,)
PUBLISHES: tuple[type[Event], ...] = (InferenceCompleted, ToolCalled, ReplyGenerated)
