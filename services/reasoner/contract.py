"""The reasoner's row of the event map (see ``agentbus.asyncapi``; checked against the handler table at start)."""

from agentbus.events import (
    ConfigChanged,
    ContextAssembled,
    Event,
    InferenceCompleted,
    JobRequested,
    MemoryRequested,
    ReplyGenerated,
    ReplyProgress,
    ToolCalled,
    UserErased,
    UserErasureRequested,
)

SUBSCRIBES: tuple[type[Event], ...] = (ContextAssembled, UserErasureRequested)
# the commands are those the agent's tools ask for (schedule, memory), published with the reply
PUBLISHES: tuple[type[Event], ...] = (InferenceCompleted, ToolCalled, ReplyGenerated, JobRequested, MemoryRequested,
                                       ReplyProgress, ConfigChanged, UserErased)

# every service follows the configuration's topic, and seeds it from its file when it is empty
FOLLOWS: tuple[type[Event], ...] = (ConfigChanged,)
