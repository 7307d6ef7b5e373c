"""Ingress's row of the event map: what it publishes, and the audit events it keeps.

Read by ``agentbus schemas`` for the AsyncAPI document; ``serve`` refuses to start a service whose handler
table differs from its contract, so the document cannot drift from what runs.
"""

from agentbus.events import (
    AuditRecorded,
    ConfigChanged,
    DeadLettered,
    Event,
    JobRequested,
    MessageReceived,
    ReplyGenerated,
    ReplyProgress,
)

SUBSCRIBES: tuple[type[Event], ...] = (AuditRecorded,)  # kept in its audit table for the operator API
PUBLISHES: tuple[type[Event], ...] = (MessageReceived, JobRequested, AuditRecorded, ConfigChanged)  # the API's
# commands and configuration writes, audit
# read outside the service's consumer group: the dead-letter gauge, and the chat API's replies (a group per
# process, so every replica sees every reply to the requests it holds)
FOLLOWS: tuple[type[Event], ...] = (DeadLettered, ReplyGenerated, ReplyProgress, ConfigChanged)
