"""The platform's outside world during a run, each in its own process: ``python -m bench.peers <role>``.

- ``llm``: OpenAI-compatible chat completions answering ``answer: <last user message>`` after ``--delay-s``;
  counts requests in flight (and their maximum) and records each call's time spent inside it.
- ``embeddings``: OpenAI-compatible ``/v1/embeddings`` returning deterministic unit vectors of ``--dim``
  (chosen from a precomputed set by a hash of the text), recording each request's time spent inside it.
- ``sink``: receives the webhook channel's signed pushes, verifies each signature (Standard Webhooks) and
  records the arrival time of every push by ``in_reply_to``.
- ``bare``: the baseline: starlette + uvicorn (the services' server stack), one route answering 202.
- ``traces``: an OTLP/HTTP trace endpoint standing in for Jaeger; decodes every export and counts its spans.

Times are ``time.monotonic()`` (system-wide on Linux), so they compare across processes. Records go to
``--out`` as text lines, flushed every half second and on ``POST /flush``. ``GET /stats`` answers counters.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import time
from pathlib import Path
from typing import Any

import orjson

from bench.minihttp import Response, run_forever, serve

TAG = re.compile(r"\[m(\d+)\]")
REPLY_PREFIX = "answer: "
MODEL_LIST = b'{"object":"list","data":[{"id":"fake-model","object":"model","created":0,"owned_by":"bench"}]}'
OK: dict[str, str] = {}
_TASKS: set[asyncio.Task[None]] = set()


def _background(records: Records) -> None:
    task = asyncio.get_running_loop().create_task(records.loop())
    _TASKS.add(task)


class Records:
    """Text lines buffered in memory and appended to a file twice a second (or on demand)."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lines: list[str] = []
        self.written = 0

    def add(self, line: str) -> None:
        if self._path is not None:
            self._lines.append(line)

    def flush(self) -> None:
        if self._path is None or not self._lines:
            return
        lines, self._lines = self._lines, []
        with open(self._path, "a", encoding="ascii") as f:
            f.write("\n".join(lines) + "\n")
        self.written += len(lines)

    async def loop(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self.flush()


def _control(method: str, path: str, stats: dict[str, Any], records: Records, reset: Any = None) -> Response | None:
    if path == "/health":
        return 200, b'{"ok":true}', OK
    if path == "/stats":
        return 200, orjson.dumps(stats), OK
    if path == "/flush" and method == "POST":
        records.flush()
        return 200, orjson.dumps({"written": records.written}), OK
    if path == "/reset" and method == "POST" and reset is not None:
        reset()
        return 200, b'{"ok":true}', OK
    return None


async def start_llm(port: int, delay_s: float, out: Path | None) -> None:
    records = Records(out)
    stats: dict[str, Any] = {"requests": 0, "in_flight": 0, "max_in_flight": 0, "busy_s": 0.0}

    def reset() -> None:
        stats["max_in_flight"] = stats["in_flight"]

    def answer(body: bytes, started: float) -> Response:
        req = orjson.loads(body)
        messages = req["messages"]
        last = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        if req.get("tools") and messages[-1]["role"] != "tool":  # the tools scenario: one tool call first
            stats["in_flight"] -= 1
            stats["tool_calls"] = stats.get("tool_calls", 0) + 1
            call = {"id": "call_1", "type": "function", "function": {"name": req["tools"][0]["function"]["name"],
                                                                      "arguments": "{}"}}
            return 200, orjson.dumps({
                "id": f"chatcmpl-{stats['requests']}", "object": "chat.completion", "created": int(time.time()),
                "model": req.get("model", "fake"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                             "finish_reason": "tool_calls"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 0},
            }), OK
        text = REPLY_PREFIX + last
        out = orjson.dumps({
            "id": f"chatcmpl-{stats['requests']}", "object": "chat.completion", "created": int(time.time()),
            "model": req.get("model", "fake"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": sum(len(m.get("content") or "") // 4 for m in messages),
                      "completion_tokens": len(text) // 4, "total_tokens": 0},
        })
        ended = time.monotonic()
        stats["in_flight"] -= 1
        stats["busy_s"] += ended - started
        m = TAG.search(last)
        records.add(f"{m.group(1) if m else -1} {started:.6f} {ended:.6f}")
        return 200, out, OK

    async def slow(body: bytes, started: float) -> Response:
        await asyncio.sleep(delay_s)
        return answer(body, started)

    def handle(method: str, path: str, headers: dict[str, str], body: bytes, at: float) -> Any:
        if path.endswith("/chat/completions") and method == "POST":
            stats["requests"] += 1
            stats["in_flight"] += 1
            stats["max_in_flight"] = max(stats["max_in_flight"], stats["in_flight"])
            return slow(body, at) if delay_s > 0 else answer(body, at)
        if path.endswith("/models") and method == "GET":  # the reasoner's health probe: listed, never a call
            return 200, MODEL_LIST, OK
        return _control(method, path, stats, records, reset) or (404, b'{"error":"not found"}', OK)

    await serve(handle, port)
    _background(records)


def unit_vectors(dim: int, n: int = 256) -> list[bytes]:
    """``n`` deterministic unit vectors of ``dim``, already as JSON arrays."""
    out = []
    for i in range(n):
        raw = hashlib.shake_256(f"bench-vector-{i}".encode()).digest(dim)
        v = [b - 127.5 for b in raw]
        norm = sum(x * x for x in v) ** 0.5
        out.append(orjson.dumps([round(x / norm, 6) for x in v]))
    return out


async def start_embeddings(port: int, dim: int, out: Path | None) -> None:
    records = Records(out)
    pool = unit_vectors(dim)
    stats: dict[str, Any] = {"requests": 0, "texts": 0, "busy_s": 0.0}

    def handle(method: str, path: str, headers: dict[str, str], body: bytes, at: float) -> Any:
        if not (path.endswith("/embeddings") and method == "POST"):
            return _control(method, path, stats, records) or (404, b'{"error":"not found"}', OK)
        req = orjson.loads(body)
        texts = req["input"] if isinstance(req["input"], list) else [req["input"]]
        parts = []
        tags = []
        for i, text in enumerate(texts):
            vec = pool[int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big") % len(pool)]
            parts.append(b'{"object":"embedding","index":%d,"embedding":%s}' % (i, vec))
            if not text.startswith(REPLY_PREFIX):  # the reply's own embedding is off the reply's path
                tags += TAG.findall(text)
        resp = (b'{"object":"list","model":"%s","data":[' % str(req.get("model", "fake")).encode()
                + b",".join(parts) + b'],"usage":{"prompt_tokens":0,"total_tokens":0}}')
        ended = time.monotonic()
        stats["requests"] += 1
        stats["texts"] += len(texts)
        stats["busy_s"] += ended - at
        if tags:
            records.add(f"{at:.6f} {ended:.6f} " + " ".join(tags))
        return 200, resp, OK

    await serve(handle, port)
    _background(records)


async def start_sink(port: int, secrets: dict[str, str], out: Path | None) -> None:
    from agentbus.stack.inbox import PushVerifier

    records = Records(out)
    verifier = PushVerifier(secrets)
    stats: dict[str, Any] = {"pushes": 0, "rejected": 0, "repeated_webhook_id": 0}
    seen: set[str] = set()

    def handle(method: str, path: str, headers: dict[str, str], body: bytes, at: float) -> Any:
        if not path.startswith("/push/"):
            return _control(method, path, stats, records) or (404, b'{"error":"not found"}', OK)
        bad = verifier.problem(path[len("/push/"):], body, headers)
        if bad is not None:
            stats["rejected"] += 1
            return bad[0], orjson.dumps({"error": bad[1]}), OK
        msg = orjson.loads(body)
        wid = headers["webhook-id"]
        if wid in seen:
            stats["repeated_webhook_id"] += 1
        else:
            seen.add(wid)
        stats["pushes"] += 1
        records.add(f"{msg.get('in_reply_to')} {at:.6f}")
        return 200, b'{"ok":true}', {"x-message-id": wid}

    await serve(handle, port)
    _background(records)


async def start_traces(port: int) -> None:
    """An OTLP/HTTP trace endpoint (what Jaeger's port 4318 speaks): decodes each export request and counts
    its spans, so the run shows that the services recorded and exported them."""
    import gzip

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    records = Records(None)
    stats: dict[str, Any] = {"requests": 0, "spans": 0, "services": {}}
    ok = ExportTraceServiceResponse().SerializeToString()

    def handle(method: str, path: str, headers: dict[str, str], body: bytes, at: float) -> Any:
        if not (path == "/v1/traces" and method == "POST"):
            return _control(method, path, stats, records) or (404, b'{"error":"not found"}', OK)
        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        req = ExportTraceServiceRequest()
        req.ParseFromString(body)
        stats["requests"] += 1
        for rs in req.resource_spans:
            service = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), "")
            n = sum(len(ss.spans) for ss in rs.scope_spans)
            stats["spans"] += n
            stats["services"][service] = stats["services"].get(service, 0) + n
        return 200, ok, {"content-type": "application/x-protobuf"}

    await serve(handle, port)


def run_bare(port: int) -> None:
    """starlette + uvicorn on uvloop, configured as the services configure theirs, one route: 202."""
    import uvloop
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from agentbus.http import server

    async def webhook(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"accepted": True}, status_code=202)

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/v1/webhooks/{channel_id}", webhook, methods=["POST"]),
                            Route("/health", health)])
    srv = server(app, "127.0.0.1", port)

    async def main() -> None:
        import signal

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: setattr(srv, "should_exit", True))
        await srv.serve()

    uvloop.run(main())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.peers")
    ap.add_argument("role", choices=["llm", "embeddings", "sink", "bare", "traces"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--delay-s", type=float, default=0.0)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--secret", action="append", default=[], help="channel=secret (sink)")
    a = ap.parse_args(argv)
    if a.role == "bare":
        run_bare(a.port)
    elif a.role == "llm":
        run_forever(lambda: start_llm(a.port, a.delay_s, a.out))
    elif a.role == "embeddings":
        run_forever(lambda: start_embeddings(a.port, a.dim, a.out))
    elif a.role == "traces":
        run_forever(lambda: start_traces(a.port))
    else:
        secrets = dict(s.split("=", 1) for s in a.secret)
        run_forever(lambda: start_sink(a.port, secrets, a.out))


if __name__ == "__main__":
    main()
