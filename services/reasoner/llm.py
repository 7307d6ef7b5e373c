"""Chat completions against any OpenAI-compatible endpoint, with retries and a fallback chain.

A model that fails (after its own retries) hands over to the agent's next fallback model. With no endpoint
configured the built-in ``echo`` model answers, saying that it is one and showing the context it received,
so the whole pipeline can be seen working offline.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import httpx
import orjson
import structlog
from opentelemetry.trace import SpanKind, Status, StatusCode
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from agentbus import metrics
from agentbus.bus.errors import PermanentError, TransientError
from agentbus.httpclient import async_client
from agentbus.services.reasoner.health import HealthBook
from agentbus.services.reasoner.llm_stream import read_stream
from agentbus.services.reasoner.ports import ECHO, Completion, Endpoint, OnText, ToolCall
from agentbus.telemetry import tracer

__all__ = ["ECHO", "ChatClient", "Completion", "Endpoint", "UpstreamError", "echo_answer"]

log = structlog.get_logger("agentbus.reasoner")


def provider_of(ep: Endpoint) -> str:
    return _provider(ep.base_url)


@lru_cache(maxsize=256)
def _provider(base_url: str | None) -> str:
    """The endpoint's host. Endpoints are built for every call (from the agent's chain); parsing the URL each
    time was 5% of the reasoner's CPU."""
    if base_url is None:
        return "agentbus"
    return httpx.URL(base_url).host or "unknown"


class UpstreamError(Exception):
    def __init__(self, status: int | None, message: str, attempts: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, UpstreamError) and (exc.status is None or exc.status == 429 or exc.status >= 500)


def provider_failed(exc: BaseException) -> bool:
    """A failure that says the provider is down (connection, timeout, 5xx), not that the request was bad."""
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, UpstreamError) and (exc.status is None or exc.status >= 500)


def echo_answer(messages: Sequence[dict[str, Any]]) -> str:
    """The built-in model's answer: what it received, kept short (the answer is remembered too)."""

    def clip(text: str, n: int = 80) -> str:
        t = " ".join(text.split())
        return t if len(t) <= n else t[: n - 1] + "…"

    notes = [m["content"] for m in messages[1:] if m["role"] == "system"]
    turns = [m for m in messages if m["role"] != "system"]
    last = turns[-1]["content"] if turns else ""
    lines = [
        "[echo model] No LLM endpoint is configured, so agentbus's built-in echo model answers.",
        f"You said: {clip(last, 500)}",
        f"Context received: {len(turns) - 1} earlier turn(s), "
        f"{sum(n.count(chr(10) + '- ') for n in notes)} recalled memory(ies).",
    ]
    for m in turns[:-1][-3:]:
        lines.append(f"- {m['role']}: {clip(m['content'])}")
    return "\n".join(lines)


class ChatClient:
    def __init__(self, attempts: int, max_connections: int, health: HealthBook | None = None) -> None:
        self._attempts = attempts
        self._health = health  # skips models that are down; told how each live call went
        self._http = async_client(max_connections=max_connections, timeout=60.0)
        # the retry policy's strategies are stateless, so they are made once (each call still gets its own
        # AsyncRetrying, which holds the attempt's state)
        self._stop = stop_after_attempt(attempts)
        self._wait = wait_exponential_jitter(multiplier=0.2, max=5)
        self._retry = retry_if_exception(_retryable)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def complete(
        self, chain: Sequence[Endpoint], messages: list[dict[str, Any]], *, temperature: float | None,
        max_tokens: int | None, tools: list[dict[str, Any]] | None = None, on_text: OnText | None = None,
    ) -> Completion:
        tried: list[str] = []
        total_attempts = 0
        last_exc: BaseException | None = None
        if self._health is not None:
            chain = self._health.usable(chain)
        for ep in chain:
            tried.append(ep.name)
            started = time.perf_counter()
            try:
                if ep.base_url is None:
                    total_attempts += 1
                    return Completion(text=echo_answer(messages), model=ECHO, provider=provider_of(ep),
                                      finish_reason="stop", latency_ms=(time.perf_counter() - started) * 1000,
                                      attempts=total_attempts, models_tried=tuple(tried))
                body, attempts = await self._call(ep, messages, temperature, max_tokens,
                                                  tools if ep.tools else None, on_text)
                total_attempts += attempts
            except (UpstreamError, httpx.TransportError, ValueError, KeyError) as exc:
                total_attempts += getattr(exc, "attempts", 1)
                metrics.child(metrics.LLM_SECONDS, ep.model, "error").observe(time.perf_counter() - started)
                log.warning("llm_model_failed", model=ep.name, error=f"{type(exc).__name__}: {exc}"[:300])
                if self._health is not None and provider_failed(exc):
                    self._health.mark(ep.name, False, f"{type(exc).__name__}: {exc}"[:300])
                last_exc = exc
                continue
            latency = (time.perf_counter() - started) * 1000
            if self._health is not None:
                self._health.mark(ep.name, True, latency_ms=latency)
            choice = body["choices"][0]
            usage = body.get("usage") or {}
            metrics.child(metrics.LLM_SECONDS, ep.model, "ok").observe(latency / 1000)
            if usage.get("prompt_tokens") is not None:
                metrics.child(metrics.LLM_TOKENS, ep.model, "input").inc(usage["prompt_tokens"])
            if usage.get("completion_tokens") is not None:
                metrics.child(metrics.LLM_TOKENS, ep.model, "output").inc(usage["completion_tokens"])
            message = choice.get("message") or {}
            return Completion(
                text=message.get("content") or "",
                model=body.get("model") or ep.model,
                provider=provider_of(ep),
                prompt_tokens=usage.get("prompt_tokens"),
                completion_tokens=usage.get("completion_tokens"),
                finish_reason=choice.get("finish_reason"),
                latency_ms=latency,
                attempts=total_attempts,
                models_tried=tuple(tried),
                tool_calls=_tool_calls(message) if tools else (),
            )
        # every model failed: transient upstream trouble is retried by the consumer; a 4xx is the input's fault
        if last_exc is not None and _retryable(last_exc):
            raise TransientError(f"all models failed; last: {last_exc}") from last_exc
        raise PermanentError(f"all models failed; last: {last_exc}") from last_exc

    async def _call(
        self, ep: Endpoint, messages: list[dict[str, Any]], temperature: float | None, max_tokens: int | None,
        tools: list[dict[str, Any]] | None, on_text: OnText | None = None,
    ) -> tuple[dict[str, Any], int]:
        payload: dict[str, Any] = {"model": ep.model, "messages": messages}
        if temperature is not None:
            payload["temperature"] = temperature
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        if tools:
            payload["tools"] = tools
        if on_text is not None:
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}  # the token counts come in a last chunk
        headers = {"Content-Type": "application/json", **ep.headers}
        if ep.api_key:
            headers["Authorization"] = f"Bearer {ep.api_key}"
        assert ep.base_url is not None  # the echo model is answered in complete()
        url = ep.base_url.rstrip("/") + "/chat/completions"
        attempts = 0
        async for attempt in AsyncRetrying(stop=self._stop, wait=self._wait, retry=self._retry, reraise=True):
            with attempt:
                attempts += 1
                with tracer().start_as_current_span(f"chat {ep.model}", kind=SpanKind.CLIENT) as span:
                    span.set_attribute("gen_ai.operation.name", "chat")
                    span.set_attribute("gen_ai.system", provider_of(ep))
                    span.set_attribute("gen_ai.request.model", ep.model)
                    if temperature is not None:
                        span.set_attribute("gen_ai.request.temperature", temperature)
                    if max_tokens is not None:
                        span.set_attribute("gen_ai.request.max_tokens", max_tokens)
                    try:
                        body = await self._post(url, payload, headers, ep.timeout_s, attempts, on_text)
                    except (httpx.TransportError, UpstreamError) as exc:
                        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                        raise
                    usage = body.get("usage") or {}
                    choice = (body.get("choices") or [{}])[0]
                    span.set_attribute("gen_ai.response.model", body.get("model") or ep.model)
                    if usage.get("prompt_tokens") is not None:
                        span.set_attribute("gen_ai.usage.input_tokens", usage["prompt_tokens"])
                    if usage.get("completion_tokens") is not None:
                        span.set_attribute("gen_ai.usage.output_tokens", usage["completion_tokens"])
                    if choice.get("finish_reason"):
                        span.set_attribute("gen_ai.response.finish_reasons", [choice["finish_reason"]])
                    if not body.get("choices"):
                        raise ValueError("response has no choices")
                    return body, attempts
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post(self, url: str, payload: dict[str, Any], headers: dict[str, str], timeout_s: float,
                    attempts: int, on_text: OnText | None) -> dict[str, Any]:
        """The completion body: read whole, or folded from the streamed chunks (``llm_stream``)."""
        content = orjson.dumps(payload)
        if on_text is None:
            resp = await self._http.post(url, content=content, headers=headers, timeout=timeout_s)
            if resp.status_code >= 400:
                raise UpstreamError(resp.status_code, f"HTTP {resp.status_code}: {resp.text[:200]}", attempts)
            body: dict[str, Any] = orjson.loads(resp.content)
            return body
        async with self._http.stream("POST", url, content=content, headers=headers, timeout=timeout_s) as resp:
            if resp.status_code >= 400:
                await resp.aread()
                raise UpstreamError(resp.status_code, f"HTTP {resp.status_code}: {resp.text[:200]}", attempts)
            return await read_stream(resp, on_text)


def _tool_calls(message: dict[str, Any]) -> tuple[ToolCall, ...]:
    """The message's tool calls; arguments stay the JSON text the model sent (the loop parses and checks it)."""
    calls = []
    for i, c in enumerate(message.get("tool_calls") or ()):
        fn = c.get("function") or {}
        calls.append(ToolCall(id=str(c.get("id") or f"call_{i}"), name=str(fn.get("name") or ""),
                              arguments=str(fn.get("arguments") or "{}")))
    return tuple(calls)
