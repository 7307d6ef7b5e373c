"""The outside world of a chaos run: an OpenAI-compatible LLM and a chat platform receiving pushes.

Both are real HTTP servers on loopback that can be told to misbehave for a while, and that record every
request they see (raw, before any de-duplication), so the run can count duplicates honestly.
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentbus.http import LoopbackServer
from agentbus.stack.inbox import PushVerifier

LLMMode = Literal["ok", "fail", "timeout"]


def uses_tool(text: str, every: int) -> bool:
    """Whether the message ``text`` is answered through the side-effecting tool (the same on every call)."""
    return every > 0 and zlib.crc32(text.encode()) % every == 0


@dataclass
class ChaosEffects:
    """The company API behind the agent's side-effecting ``effect`` tool. It records every request with its
    Idempotency-Key, applying each key once (as an API honouring the header does), so the run can tell a
    repeated request (same key: harmless) from a repeated effect (the same message acted on under two keys)."""

    requests: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # text → keys, raw
    _http: LoopbackServer | None = None

    async def start(self) -> ChaosEffects:
        async def effect(request: Request) -> Response:
            body = orjson.loads(await request.body())
            key = request.headers.get("idempotency-key", "")
            self.requests[str(body["arguments"].get("text"))].append(key)
            return JSONResponse({"applied": True, "key": key})

        self._http = LoopbackServer([Route("/effects", effect, methods=["POST"])])
        await self._http.start()
        return self

    @property
    def url(self) -> str:
        assert self._http is not None
        return self._http.url + "/effects"

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.stop()


@dataclass
class ChaosLLM:
    """``POST /v1/chat/completions`` answering ``answer: <last user message>`` after a short random delay.

    ``mode``: "ok"; "fail" answers 500; "timeout" holds the request past the client's timeout, then 504.
    ``served[text]`` holds the times of completions actually returned (200) per input message; ``failed``
    counts the rest.
    """

    delay_s: tuple[float, float] = (0.02, 0.15)
    hang_s: float = 5.0
    mode: LLMMode = "ok"
    tools_every: int = 3  # one message in this many is answered through a side-effecting tool call first
    served: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    tool_steps: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # step-1 completions
    failed: int = 0
    requests: int = 0
    _http: LoopbackServer | None = None

    async def start(self) -> ChaosLLM:
        async def completions(request: Request) -> Response:
            body = orjson.loads(await request.body())
            self.requests += 1
            mode = self.mode
            if mode == "fail":
                self.failed += 1
                return JSONResponse({"error": {"message": "injected failure"}}, status_code=500)
            if mode == "timeout":
                self.failed += 1
                await asyncio.sleep(self.hang_s)
                return JSONResponse({"error": {"message": "injected timeout"}}, status_code=504)
            await asyncio.sleep(random.uniform(*self.delay_s))
            last = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
            offered = {t["function"]["name"] for t in body.get("tools") or ()}
            answered = any(m["role"] == "tool" for m in body["messages"])
            if "effect" in offered and not answered and uses_tool(last, self.tools_every):
                self.tool_steps[last].append(time.monotonic())
                call = {"id": "call_1", "type": "function",
                        "function": {"name": "effect", "arguments": orjson.dumps({"text": last}).decode()}}
                return JSONResponse({
                    "id": f"chatcmpl-{self.requests}", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "fake"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                                 "finish_reason": "tool_calls"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 0},
                })
            self.served[last].append(time.monotonic())
            text = f"answer: {last}"
            return JSONResponse({
                "id": f"chatcmpl-{self.requests}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": len(text.split()), "total_tokens": 0},
            })

        self._http = LoopbackServer([Route("/v1/chat/completions", completions, methods=["POST"])])
        await self._http.start()
        return self

    @property
    def base_url(self) -> str:
        assert self._http is not None
        return self._http.url + "/v1"

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.stop()


@dataclass
class Push:
    webhook_id: str
    in_reply_to: str | None
    conversation: str
    text: str
    status: int
    at: float  # time.monotonic()


@dataclass
class ChaosSink:
    """Receives signed pushes at ``/push/{channel}``, verifies each, answers 200 (or 429 while throttling).

    ``pushes`` holds every verified request with the status it was (or is being) answered, in arrival order:
    a push counts as received when it arrives, as at a real platform, even if the pusher dies before the
    answer reaches it.
    """

    secrets: dict[str, str]
    delay_s: tuple[float, float] = (0.01, 0.08)  # a platform takes a moment to answer, even after it got the message
    retry_after_s: int = 1
    throttling: bool = False
    pushes: list[Push] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    _http: LoopbackServer | None = None

    async def start(self) -> ChaosSink:
        verifier = PushVerifier(self.secrets)

        async def push(request: Request) -> Response:
            channel = request.path_params["channel"]
            body = await request.body()
            bad = verifier.problem(channel, body, request.headers)
            if bad is not None:
                self.rejected.append(bad[1])
                return JSONResponse({"error": bad[1]}, status_code=bad[0])
            msg: dict[str, Any] = orjson.loads(body)
            status = 429 if self.throttling else 200
            self.pushes.append(Push(request.headers["webhook-id"], msg.get("in_reply_to"), msg.get("conversation", ""),
                                    msg.get("text", ""), status, time.monotonic()))
            await asyncio.sleep(random.uniform(*self.delay_s))
            if status == 429:
                return JSONResponse({"error": "slow down"}, status_code=429,
                                    headers={"retry-after": str(self.retry_after_s)})
            return JSONResponse({"ok": True})

        self._http = LoopbackServer([Route("/push/{channel}", push, methods=["POST"])])
        await self._http.start()
        return self

    @property
    def url(self) -> str:
        assert self._http is not None
        return self._http.url

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.stop()
