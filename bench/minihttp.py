"""A minimal HTTP/1.1 server on asyncio (keep-alive, Content-Length bodies) for the fakes and the sink.

The benchmark's own peers must never be the bottleneck: this costs a fraction of a full ASGI stack per
request. Requests on one connection are answered in order (reading pauses while a slow handler runs).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

Response = tuple[int, bytes, dict[str, str]]
Handler = Callable[[str, str, dict[str, str], bytes, float], "Response | Awaitable[Response]"]

_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            411: "Length Required", 500: "Internal Server Error"}


def _head(status: int, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", f"content-length: {len(body)}"]
    if "content-type" not in headers:
        lines.append("content-type: application/json")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class _Conn(asyncio.Protocol):
    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._buf = bytearray()
        self._t: asyncio.Transport | None = None
        self._busy = False
        self._closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._t = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._t = None

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._busy:
            self._process()

    def _process(self) -> None:
        while self._t is not None and not self._closing:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
            try:
                method, target, _ = lines[0].split(" ", 2)
            except ValueError:
                self._write(400, b'{"error":"bad request line"}', {}, close=True)
                return
            headers: dict[str, str] = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            if "chunked" in headers.get("transfer-encoding", ""):
                self._write(411, b'{"error":"send content-length"}', {}, close=True)
                return
            n = int(headers.get("content-length", "0") or 0)
            if len(self._buf) < end + 4 + n:
                return
            body = bytes(self._buf[end + 4:end + 4 + n])
            del self._buf[:end + 4 + n]
            close = headers.get("connection", "").lower() == "close"
            try:
                result = self._handler(method, target, headers, body, time.monotonic())
            except Exception as exc:  # noqa: BLE001 - a bug in a fake: answer 500 and say why
                self._write(500, repr(exc).encode(), {}, close=False)
                continue
            if isinstance(result, tuple):
                self._write(*result, close=close)
                continue
            self._busy = True
            self._t.pause_reading()
            task = asyncio.ensure_future(result)
            task.add_done_callback(lambda t, close=close: self._finished(t, close))
            return

    def _finished(self, task: asyncio.Future[Response], close: bool) -> None:
        self._busy = False
        if self._t is None:
            return
        try:
            status, body, headers = task.result()
        except Exception as exc:  # noqa: BLE001 - the same for a slow handler
            status, body, headers = 500, repr(exc).encode(), {}
        self._write(status, body, headers, close=close)
        if self._t is not None:
            self._t.resume_reading()
            self._process()

    def _write(self, status: int, body: bytes, headers: dict[str, str], close: bool) -> None:
        if self._t is None:
            return
        if close:
            headers = {**headers, "connection": "close"}
        self._t.write(_head(status, body, headers) + body)
        if close:
            self._closing = True
            self._t.close()


async def serve(handler: Handler, port: int, host: str = "127.0.0.1") -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _Conn(handler), host, port, backlog=4096, reuse_address=True)


def run_forever(make: Callable[[], Awaitable[Any]]) -> None:
    """Run ``make()`` (which starts servers) on uvloop and serve until SIGTERM/SIGINT."""
    import signal

    import uvloop

    async def main() -> None:
        await make()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    uvloop.run(main())
