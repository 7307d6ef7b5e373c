"""Memory's row of the event map (see ``agentbus.asyncapi``; checked against the handler table at start)."""

from agentbus.events import (
    ConfigChanged,
    ContextAssembled,
    Event,
    JobTriggered,
    KnowledgeRequested,
    MemoryRequested,
    MessageReceived,
    ReplyGenerated,
    UserErased,
    UserErasureRequested,
)

SUBSCRIBES: tuple[type[Event], ...] = (MessageReceived, JobTriggered, ReplyGenerated, MemoryRequested,
                                       UserErasureRequested, KnowledgeRequested)
PUBLISHES: tuple[type[Event], ...] = (ContextAssembled, ConfigChanged, UserErased)

# every service follows the configuration's topic, and seeds it from its file when it is empty
FOLLOWS: tuple[type[Event], ...] = (ConfigChanged,)
