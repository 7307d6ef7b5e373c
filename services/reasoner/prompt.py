"""From assembled context to the chat messages an OpenAI-compatible model receives.

Images sent to the bot reach a model that accepts them (``vision``) as OpenAI ``image_url`` parts with the
bytes inline (a data URL: the model's endpoint cannot reach our blob store); every other attachment, and every
image for a model without vision, is a one-line note, so the model knows something came and can say so.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from agentbus.config import Agent
from agentbus.events import Attachment, ContextAssembledData, Recall, Turn

IMAGE_TOKENS = 765  # what a 1024x1024 image costs at OpenAI's "high" detail: a budget estimate, not a price
Images = Mapping[str, tuple[bytes, str]]  # blob ref -> (bytes, content type)


def attachment_note(a: Attachment, said: str = "") -> str:
    bits = [a.name or a.kind, a.content_type or "unknown type"]
    if a.size is not None:
        bits.append(f"{a.size} bytes")
    note = "[attachment: " + ", ".join(bits)
    if a.transcript and a.transcript.strip() != said.strip():
        note += f"; transcript: {a.transcript}"
    if a.error:
        note += f"; not available: {a.error}"
    return note + "]"


def wants_image(a: Attachment) -> bool:
    return a.kind == "image" and a.ref is not None and (a.content_type or "").startswith("image/")


def user_content(turn: Turn, images: Images | None = None) -> str | list[dict[str, Any]]:
    """The text of a turn with a note per attachment; with ``images`` (a vision model), parts with the images."""
    shown = [a for a in turn.attachments if images and a.ref in images and wants_image(a)]
    notes = [attachment_note(a, turn.text) for a in turn.attachments if a not in shown]
    text = "\n".join(x for x in (turn.text, *notes) if x)
    if not shown:
        return text
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for a in shown:
        assert images is not None and a.ref is not None
        data, ctype = images[a.ref]
        url = f"data:{ctype};base64,{base64.b64encode(data).decode()}"
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def without_image_data(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages as the ledger keeps them: an image's bytes are already in the blob store."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = [{"type": "image_url", "image_url": {"url": p["image_url"]["url"].split(",", 1)[0] + ",..."}}
                       if p.get("type") == "image_url" else p for p in content]
            m = {**m, "content": content}
        out.append(m)
    return out


def attribution(m: Recall) -> str:
    """Who said a recalled memory, where and when, as the model reads it: ``[2026-11-30, alice in #team]``.
    Without it the model cannot tell whose fact it is (one person's locker code is not another's). A chunk of the
    tenant's knowledge base says its document and section instead: ``[knowledge: Handbook › Leave, loaded
    2026-12-01]``."""
    if m.knowledge is not None:
        k = m.knowledge
        where = " › ".join(x for x in (k.title, k.section) if x) or "a document"
        return f"[knowledge: {where}, loaded {k.loaded_at.date().isoformat()}]"
    when = m.at.date().isoformat() if m.at is not None else "undated"
    if m.role == "assistant":
        who = "you (the assistant)"
    else:
        who = m.sender_name or m.sender or "someone (sender not recorded)"
    if m.chat_type == "group":
        where = f" in #{m.chat_name or m.chat}" if (m.chat_name or m.chat) else " in a group chat"
    elif m.chat_type == "direct":
        where = " in a direct chat"
    else:
        where = ""
    via = f" on {m.channel}" if m.channel else ""
    kind = "fact about " if m.kind == "fact" else ""
    return f"[{when}, {kind}{who}{where}{via}]"


def build_messages(agent: Agent, ctx: ContextAssembledData, system_prompt: str | None = None,
                   images: Images | None = None, summary: str | None = None,
                   earlier: Sequence[Turn] = ()) -> list[dict[str, Any]]:
    """The system prompt, recalled memories, the running summary (``summary``: what came before ``earlier``),
    the turns between it and the history, the history, and the question."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt or agent.system_prompt}]
    if ctx.memories:
        notes = "\n".join(f"- {attribution(m)} {m.text}" for m in ctx.memories)
        source = " and the knowledge base" if any(m.knowledge is not None for m in ctx.memories) else ""
        messages.append({"role": "system",
                         "content": f"Relevant memories from earlier conversations{source}:\n{notes}"})
    if summary:
        messages.append({"role": "system", "content": f"Summary of this conversation before the turns below:\n"
                                                      f"{summary}"})
    for t in (*earlier, *ctx.history):
        messages.append({"role": "assistant" if t.role == "assistant" else "user", "content": t.text})
    messages.append({"role": "user", "content": user_content(ctx.input, images)})
    return messages


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate: a CJK character is about one token, other text about four characters a token
    (close enough for a budget that keeps a margin; no model's own tokenizer is needed)."""
    wide = sum(1 for ch in text if ord(ch) >= 0x2E80)
    return wide + (len(text) - wide + 3) // 4


def message_tokens(m: dict[str, Any]) -> int:
    content = m.get("content")
    text = content if isinstance(content, str) else ""
    if isinstance(content, list):
        text = "".join(p.get("text") or "" for p in content if isinstance(p, dict))
        n_images = sum(1 for p in content if isinstance(p, dict) and p.get("type") == "image_url")
        return 4 + estimate_tokens(text) + IMAGE_TOKENS * n_images
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
