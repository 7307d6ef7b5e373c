"""Real HTTP servers for tests: a fake OpenAI-compatible LLM, a webhook sink that verifies signatures, and a
recording proxy in front of a real embeddings server.

Each speaks the real protocol over real HTTP on a free loopback port, and records what it saw so tests
can assert on it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agentbus.http import LoopbackServer
from agentbus.stack.inbox import PushVerifier

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def tool_protocol_problem(body: dict[str, Any]) -> str | None:
    """What an OpenAI-compatible server would refuse (400) in the tools / tool_calls part of a request."""
    for i, t in enumerate(body.get("tools") or []):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(fn, dict):
            return f"tools[{i}]: expected {{type: function, function: {{...}}}}"
        if not TOOL_NAME.match(str(fn.get("name", ""))):
            return f"tools[{i}].function.name: must match {TOOL_NAME.pattern}"
        if fn.get("parameters") is not None and not isinstance(fn["parameters"], dict):
            return f"tools[{i}].function.parameters: must be a JSON Schema object"
    open_calls: set[str] = set()
    for i, m in enumerate(body["messages"]):
        role = m.get("role")
        if role == "tool":
            if m.get("tool_call_id") not in open_calls:
                return f"messages[{i}]: a tool message must answer a tool_call_id of the preceding assistant message"
            open_calls.discard(m["tool_call_id"])
            continue
        if open_calls:
            return f"messages[{i}]: tool calls {sorted(open_calls)} were not answered"
        if role == "assistant" and m.get("tool_calls"):
            for c in m["tool_calls"]:
                if c.get("type") != "function" or not isinstance(c.get("function", {}).get("arguments"), str):
                    return f"messages[{i}].tool_calls: each needs type function and arguments as a JSON string"
                open_calls.add(c["id"])
        elif m.get("content") is None:
            return f"messages[{i}].content: required"
    return f"tool calls {sorted(open_calls)} were not answered" if open_calls else None


def tool_call(name: str, arguments: dict[str, Any], call_id: str) -> dict[str, Any]:
    """One entry of an assistant message's ``tool_calls``, as OpenAI sends it (arguments as a JSON string)."""
    function = {"name": name, "arguments": orjson.dumps(arguments).decode()}
    return {"id": call_id, "type": "function", "function": function}


# a scripted model: the request body in, the assistant message out ({"content": ...} or {"tool_calls": [...]})
Script = Callable[[dict[str, Any]], dict[str, Any]]


def content_parts_problem(body: dict[str, Any]) -> str | None:
    """What an OpenAI endpoint refuses in content parts: unknown part types, an image without a URL."""
    for m in body["messages"]:
        content = m.get("content")
        if not isinstance(content, list):
            continue
        for p in content:
            kind = p.get("type") if isinstance(p, dict) else None
            if kind == "text" and isinstance(p.get("text"), str):
                continue
            url = (p.get("image_url") or {}).get("url") if kind == "image_url" else None
            if not isinstance(url, str) or not url.startswith(("data:image/", "https://", "http://")):
                return f"invalid content part: {str(p)[:80]}"
    return None


def content_text(content: Any) -> str:
    """A message's text: the string, or the text parts of OpenAI content parts (images have none)."""
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content or ""


@dataclass
class FakeLLM:
    """OpenAI-compatible ``POST /v1/chat/completions`` and ``GET /v1/models``. Answers ``reply_prefix + last
    user message``, or what ``script`` says (text or tool calls). Requests that break the tool-calling protocol
    get a 400, as from a real endpoint. With ``api_key`` set, a request without that bearer key gets OpenAI's
    401; ``fail_status`` fails both routes (a provider that is down), ``models_status`` only the model list
    (404 is a provider that has none)."""

    reply_prefix: str = "answer: "
    delay_s: float = 0.0
    stream_delay_s: float = 0.0  # ``stream: true``: the pause before each chunk after the first
    fail_status: int | None = None  # answer every call with this status while set
    script: Script | None = None
    api_key: str | None = None
    models_status: int | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    model_listings: list[dict[str, str]] = field(default_factory=list)  # the headers of each GET /models
    server: LoopbackServer | None = None

    def _refused(self, request: Request) -> Response | None:
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                           "code": "invalid_api_key"}}, status_code=401)
        return None

    async def start(self) -> FakeLLM:
        async def models(request: Request) -> Response:
            self.model_listings.append(dict(request.headers))
            status = self.models_status or self.fail_status
            if status is not None:
                return JSONResponse({"error": {"message": "injected failure"}}, status_code=status)
            refused = self._refused(request)
            if refused is not None:
                return refused
            return JSONResponse({"object": "list", "data": [
                {"id": "fake-model", "object": "model", "created": 0, "owned_by": "agentbus-tests"}]})

        async def completions(request: Request) -> Response:
            refused = self._refused(request)
            if refused is not None:
                return refused
            if request.headers.get("content-type", "").split(";")[0] != "application/json":
                return JSONResponse({"error": {"message": "content-type must be application/json"}}, status_code=400)
            body = orjson.loads(await request.body())
            if not isinstance(body.get("messages"), list) or not body.get("model"):
                return JSONResponse({"error": {"message": "model and messages are required"}}, status_code=400)
            problem = tool_protocol_problem(body) or content_parts_problem(body)
            if problem is not None:
                return JSONResponse({"error": {"message": problem, "type": "invalid_request_error"}}, status_code=400)
            self.calls.append(body)
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if self.fail_status is not None:
                return JSONResponse({"error": {"message": "injected failure"}}, status_code=self.fail_status)
            if self.script is not None:
                message = {"role": "assistant", "content": None, **self.script(body)}
                text = message.get("content") or ""
                finish = "tool_calls" if message.get("tool_calls") else "stop"
            else:
                last = content_text([m for m in body["messages"] if m["role"] == "user"][-1]["content"])
                text = f"{self.reply_prefix}{last}"
                message, finish = {"role": "assistant", "content": text}, "stop"
            usage = {"prompt_tokens": sum(len(content_text(m.get("content")).split()) for m in body["messages"]),
                     "completion_tokens": len(text.split()), "total_tokens": 0}
            if body.get("stream") is True:
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return StreamingResponse(self._chunks(body["model"], message, finish, usage if include_usage
                                                      else None), media_type="text/event-stream")
            return JSONResponse(
                {
                    "id": f"chatcmpl-{len(self.calls)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body["model"],
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": usage,
                }
            )

        self.server = LoopbackServer([Route("/v1/chat/completions", completions, methods=["POST"]),
                                      Route("/v1/models", models, methods=["GET"])])
        await self.server.start()
        return self

    async def _chunks(self, model: str, message: dict[str, Any], finish: str,
                      usage: dict[str, Any] | None) -> AsyncIterator[bytes]:
        """The answer as OpenAI streams it: ``chat.completion.chunk`` objects as server-sent events, the role
        first, the content word by word, each tool call's id and name then its arguments in pieces, the
        finish reason, the usage (when asked for), ``[DONE]``."""
        base = {"id": f"chatcmpl-{len(self.calls)}", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model}

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            c = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
            return b"data: " + orjson.dumps(c) + b"\n\n"

        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        words = re.findall(r"\S+\s*|\s+", message.get("content") or "")
        deltas += [{"content": w} for w in words]
        for i, call in enumerate(message.get("tool_calls") or ()):
            args = call["function"]["arguments"]
            deltas.append({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                           "function": {"name": call["function"]["name"], "arguments": ""}}]})
            half = len(args) // 2
            deltas += [{"tool_calls": [{"index": i, "function": {"arguments": piece}}]}
                       for piece in (args[:half], args[half:]) if piece]
        for n, delta in enumerate(deltas):
            if n and self.stream_delay_s:
                await asyncio.sleep(self.stream_delay_s)
            yield chunk(delta)
        yield chunk({}, finish)
        if usage is not None:
            yield b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n"
        yield b"data: [DONE]\n\n"

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return self.server.url + "/v1"

    def calls_with(self, text: str) -> list[dict[str, Any]]:
        return [c for c in self.calls
                if any(text in content_text(m.get("content")) for m in c["messages"] if m["role"] == "user")]

    def images(self) -> list[str]:
        """The ``image_url`` URLs of every user message received, in order."""
        return [p["image_url"]["url"] for c in self.calls for m in c["messages"] if m["role"] == "user"
                and isinstance(m.get("content"), list) for p in m["content"] if p.get("type") == "image_url"]

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()


@dataclass
class WebhookSink:
    """Receives signed pushes at ``/push/{channel}``; verifies each with the channel's secret.

    ``raw`` counts every request (so duplicates are visible), ``by_reply`` groups verified ones by
    ``webhook-id``. ``status_plan`` can make it answer e.g. 429 with Retry-After a number of times.
    """

    secrets: dict[str, str]
    received: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    by_reply: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    status_plan: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    server: LoopbackServer | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> WebhookSink:
        verifier = PushVerifier(self.secrets)

        async def push(request: Request) -> Response:
            channel = request.path_params["channel"]
            body = await request.body()
            bad = verifier.problem(channel, body, request.headers)
            if bad is not None:
                self.rejected.append(bad[1])
                return JSONResponse({"error": bad[1]}, status_code=bad[0])
            if self.status_plan:
                status, headers = self.status_plan.pop(0)
                return JSONResponse({"error": "planned"}, status_code=status, headers=headers)
            msg = orjson.loads(body)
            msg["_channel"] = channel
            msg["_webhook_id"] = request.headers["webhook-id"]
            msg["_at"] = time.time()
            self.received.append(msg)
            self.by_reply[msg["_webhook_id"]].append(msg)
            self._arrived.set()
            return JSONResponse({"ok": True})

        self.server = LoopbackServer([Route("/push/{channel}", push, methods=["POST"])])
        await self.server.start()
        return self

    def url_for(self, channel: str) -> str:
        assert self.server is not None
        return f"{self.server.url}/push/{channel}"

    async def wait_for(self, predicate: Any, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            hits = [m for m in self.received if predicate(m)]
            if hits:
                return hits
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no matching push arrived")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), min(remaining, 0.5))
            except TimeoutError:
                pass

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()


@dataclass
class RecordingEmbeddings:
    """An OpenAI-compatible ``POST /v1/embeddings`` in front of a real embeddings server (``upstream``, its
    ``.../v1`` URL): each request is forwarded as it came and answered with the server's answer, and the texts
    of every request are recorded, so a test sees what the embeddings server was sent."""

    upstream: str
    inputs: list[str] = field(default_factory=list)
    server: LoopbackServer | None = None
    _client: httpx.AsyncClient | None = None

    async def start(self) -> RecordingEmbeddings:
        self._client = client = httpx.AsyncClient(timeout=30.0)

        async def embeddings(request: Request) -> Response:
            body = await request.body()
            texts = orjson.loads(body).get("input")
            self.inputs += [texts] if isinstance(texts, str) else list(texts or [])
            resp = await client.post(self.upstream.rstrip("/") + "/embeddings", content=body,
                                     headers={"Content-Type": "application/json"})
            return Response(resp.content, status_code=resp.status_code, media_type="application/json")

        self.server = LoopbackServer([Route("/v1/embeddings", embeddings, methods=["POST"])])
        await self.server.start()
        return self

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return self.server.url + "/v1"

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        if self._client is not None:
            await self._client.aclose()
