"""Real HTTP servers for tests: a fake OpenAI-compatible LLM, and a webhook sink that verifies signatures.

Both speak the real protocol over real HTTP on a free loopback port, and record what they saw so tests
can assert on it.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentbus.http import LoopbackServer
from agentbus.stack.inbox import PushVerifier


@dataclass
class FakeLLM:
    """OpenAI-compatible ``POST /v1/chat/completions``. Answers ``reply_prefix + last user message``."""

    reply_prefix: str = "answer: "
    delay_s: float = 0.0
    fail_status: int | None = None  # answer every call with this status while set
    calls: list[dict[str, Any]] = field(default_factory=list)
    server: LoopbackServer | None = None

    async def start(self) -> FakeLLM:
        async def completions(request: Request) -> Response:
            if request.headers.get("content-type", "").split(";")[0] != "application/json":
                return JSONResponse({"error": {"message": "content-type must be application/json"}}, status_code=400)
            body = orjson.loads(await request.body())
            if not isinstance(body.get("messages"), list) or not body.get("model"):
                return JSONResponse({"error": {"message": "model and messages are required"}}, status_code=400)
            self.calls.append(body)
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if self.fail_status is not None:
                return JSONResponse({"error": {"message": "injected failure"}}, status_code=self.fail_status)
            last = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
            text = f"{self.reply_prefix}{last}"
            return JSONResponse(
                {
                    "id": f"chatcmpl-{len(self.calls)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": sum(len(m["content"].split()) for m in body["messages"]),
                              "completion_tokens": len(text.split()), "total_tokens": 0},
                }
            )

        self.server = LoopbackServer([Route("/v1/chat/completions", completions, methods=["POST"])])
        await self.server.start()
        return self

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return self.server.url + "/v1"

    def calls_with(self, text: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if any(text in m["content"] for m in c["messages"] if m["role"] == "user")]

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
