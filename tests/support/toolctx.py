"""A ``ToolContext`` for calling tools in tests, as the reasoner's tool loop would."""

from __future__ import annotations

from datetime import UTC, datetime

from agentbus.events import Chat, ContextAssembled, ContextAssembledData, Turn
from agentbus.services.reasoner.tools.base import ToolContext


def tool_context(now: datetime | None = None, agent: str = "assistant") -> ToolContext:
    at = now or datetime.now(UTC)
    cause = ContextAssembled.new(
        ContextAssembledData(agent=agent, channel="acme", channel_type="webhook", chat=Chat(id="c1"),
                             trigger="message", input=Turn(role="user", text="hi", at=at)),
        source="memory", tenant="acme", conversation="acme/acme/c1",
    )
    return ToolContext(cause=cause, idempotency_key=f"{cause.id}:0:0", now=at)
