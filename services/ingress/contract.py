"""Ingress's row of the event map: what it publishes, and the audit events it keeps.

Read by ``agentbus schemas`` for the AsyncAPI document; ``serve`` refuses to start a service whose handler
table differs from its contract, so the document cannot drift from what runs.
"""

from agentbus.events import (
    AuditRecorded,
    ConfigChanged,
    DeadLettered,
    DeliveryCompleted,
    Event,
    InferenceCompleted,
    JobRequested,
    KnowledgeRequested,
    MemoryRequested,
    MessageReceived,
    ReplayRequested,
    ReplaySelected,
    ReplyGenerated,
    ReplyProgress,
    ToolCalled,
    UserErased,
    UserErasureRequested,
)

# audit events (and every service's erasures) kept in its audit table for the operator API; replay runs asked
# for through it; erasures, whose data keys it deletes
SUBSCRIBES: tuple[type[Event], ...] = (AuditRecorded, ReplayRequested, UserErasureRequested, UserErased)
# the API's commands (jobs, forgetting a memory, the knowledge base), configuration writes and audit, and a
# replay run's selection (its replayed copies keep their own source)
PUBLISHES: tuple[type[Event], ...] = (MessageReceived, JobRequested, MemoryRequested, AuditRecorded, ReplayRequested,
                                      ReplaySelected, ConfigChanged, UserErasureRequested, UserErased,
                                      KnowledgeRequested)
# read outside the service's consumer group: the dead-letter gauge, and the chat API's replies (a group per
# process, so every replica sees every reply to the requests it holds), the operator API's dead letters and
# replay runs (their selections and what they produced), and the configuration
FOLLOWS: tuple[type[Event], ...] = (DeadLettered, ReplyGenerated, ReplyProgress, ReplaySelected, InferenceCompleted,
                                    DeliveryCompleted, ToolCalled, ConfigChanged)
