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


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate: a CJK character is about one token, other text about four characters a token
    (close enough for a budget that keeps a margin; no model's own tokenizer is needed)."""
    wide = sum(1 for ch in text if ord(ch) >= 0x2E80)
    return wide + (len(text) - wide + 3) // 4


def message_tokens(m: dict[str, Any]) -> int:
    content = m.get("content")
    text = content if isinstance(content, str) else ""
    calls = "".join(c["function"]["name"] + c["function"]["arguments"] for c in m.get("tool_calls") or ())
    return 4 + estimate_tokens(text) + estimate_tokens(calls)


def fit(messages: list[dict[str, Any]], budget: int | None, reserved: int = 0) -> list[dict[str, Any]]:
    """The messages within ``budget`` tokens (``reserved`` of them already taken by the tool transcript): the
    oldest history goes first, never the system prompts (the agent's and the recalled memories) nor the
    question (the last message). If those alone exceed the budget they are sent anyway: the question is
    not cut, the model answers or refuses."""
    if budget is None:
        return messages
    head = [m for m in messages[:-1] if m["role"] == "system"]
    history = [m for m in messages[:-1] if m["role"] != "system"]
    question = messages[-1:]
    room = budget - reserved - sum(message_tokens(m) for m in head + question)
    kept: list[dict[str, Any]] = []
    for m in reversed(history):  # newest first
        cost = message_tokens(m)
        if cost > room:
            break
        kept.append(m)
        room -= cost
    return head + list(reversed(kept)) + question
