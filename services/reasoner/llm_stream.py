"""A streamed chat completion (``stream: true``): OpenAI's server-sent chunks, put back together.

The chunks are folded into the body a non-streamed call answers (``choices[0].message`` with ``content``
and ``tool_calls``, ``finish_reason``, ``usage``), so everything after the call is the same for both and the
final text is identical. Tool calls stream too: each chunk's ``delta.tool_calls`` entries carry an ``index``,
the first one of a call its id and name, later ones pieces of its arguments, which are joined in order.
``on_text`` hears the whole text so far after each chunk that added to it.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from agentbus.services.reasoner.ports import OnText


async def read_stream(resp: httpx.Response, on_text: OnText) -> dict[str, Any]:
    """The completion body the chunks of ``resp`` add up to; ``ValueError`` for a stream that breaks off."""
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    body: dict[str, Any] = {}
    finish: str | None = None
    done = False
    async for line in resp.aiter_lines():
        if not line.startswith("data:"):
            continue  # blank separators, ": keep-alive" comments, event: lines
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            break
        chunk = orjson.loads(data)
        if not isinstance(chunk, dict):
            raise ValueError("stream chunk is not a JSON object")
        if "error" in chunk:
            raise ValueError(f"stream error: {str(chunk['error'])[:200]}")
        body.setdefault("id", chunk.get("id"))
        if chunk.get("model"):
            body["model"] = chunk["model"]
        if chunk.get("usage"):
            body["usage"] = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                text.append(delta["content"])
                await on_text("".join(text))
            for part in delta.get("tool_calls") or ():
                _fold_call(calls, part)
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
    if not done and finish is None:
        raise ValueError("stream ended before its last chunk")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    body["choices"] = [{"index": 0, "message": message, "finish_reason": finish}]
    return body


def _fold_call(calls: dict[int, dict[str, Any]], part: dict[str, Any]) -> None:
    index = part.get("index", len(calls))
    call = calls.setdefault(index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
    if part.get("id"):
        call["id"] = part["id"]
    fn = part.get("function") or {}
    if fn.get("name"):
        call["function"]["name"] += fn["name"]
    if fn.get("arguments"):
        call["function"]["arguments"] += fn["arguments"]
