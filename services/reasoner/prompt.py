"""From assembled context to the chat messages an OpenAI-compatible model receives."""

from __future__ import annotations

from typing import Any

from agentbus.config import Agent
from agentbus.events import ContextAssembledData


def build_messages(agent: Agent, ctx: ContextAssembledData, system_prompt: str | None = None) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt or agent.system_prompt}]
    if ctx.memories:
        notes = "\n".join(f"- ({m.role}) {m.text}" for m in ctx.memories)
        messages.append({"role": "system", "content": f"Relevant memories from earlier conversations:\n{notes}"})
    for t in ctx.history:
        messages.append({"role": "assistant" if t.role == "assistant" else "user", "content": t.text})
    messages.append({"role": "user", "content": ctx.input.text})
    return messages
