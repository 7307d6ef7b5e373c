"""What the end-to-end tests of a channel's two modes share: what the model was asked, and how often ingress
published what arrived over a long connection.

A long connection has no HTTP answer saying ``published`` or ``duplicate``; ingress counts each event's outcome
per channel in ``agentbus_channel_stream_events_total``, so a test reads that counter before and after a push.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.servers import FakeLLM, content_text


def asked(call: dict[str, Any]) -> Any:
    """The content of the last user message of one LLM request (a string, or OpenAI content parts)."""
    return [m for m in call["messages"] if m["role"] == "user"][-1]["content"]


def calls_asking(llm: FakeLLM, word: str) -> list[dict[str, Any]]:
    """The requests whose newest user message has ``word`` (not those that only carry it in their history)."""
    return [c for c in llm.calls if word in content_text(asked(c))]


def image_part(data: bytes, content_type: str) -> dict[str, Any]:
    """The ``image_url`` part a vision model is given for an image of exactly these bytes."""
    return {"type": "image_url",
            "image_url": {"url": f"data:{content_type};base64,{base64.b64encode(data).decode()}"}}


async def stream_outcomes(ingress_url: str, channel: str) -> dict[str, float]:
    """outcome -> how many events of ``channel`` arrived over its long connection with that outcome."""
    async with httpx.AsyncClient() as c:
        text = (await c.get(f"{ingress_url}/metrics")).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "agentbus_channel_stream_events":
            continue
        for s in family.samples:
            if s.name.endswith("_total") and s.labels.get("channel") == channel:
                out[s.labels["outcome"]] = s.value
    return out


def grew(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """The outcomes that changed between two readings, by how much."""
    return {k: after[k] - before.get(k, 0.0) for k in after if after[k] != before.get(k, 0.0)}


async def until_grown(ingress_url: str, channel: str, before: dict[str, float], want: dict[str, float],
                      timeout: float = 30.0) -> None:
    """Wait until the outcomes of ``channel`` grew by at least ``want`` since ``before``; then they must have
    grown by exactly that."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        now = grew(before, await stream_outcomes(ingress_url, channel))
        if all(now.get(k, 0.0) >= v for k, v in want.items()):
            assert now == want, now
            return
        if loop.time() > deadline:
            raise AssertionError(f"outcomes of {channel} grew by {now}, expected {want}")
        await asyncio.sleep(0.1)
