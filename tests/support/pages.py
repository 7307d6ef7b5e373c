"""Pages for the ``http_fetch`` tests: a real HTTP server on loopback, and a guard that no test connects
anywhere else.

The server answers HTML, JSON, large, endless, slow, binary, untyped and redirecting pages, and records the
Host header of every request (the tool connects to a checked address but must still name the host).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from agentbus.http import LoopbackServer

HTML = """<!doctype html><html><head><title>Quarterly report</title><style>body { color: red }</style>
<script>var secret = "do not read";</script></head>
<body><nav><a href="/">Home</a></nav><h1>Results</h1><p>Revenue grew <b>12%</b>
   in   the third quarter.</p><ul><li>Europe</li><li>Asia</li></ul><noscript>enable js</noscript></body></html>"""


@dataclass
class PageServer:
    hosts: list[str] = field(default_factory=list)  # the Host header of each request, in order
    release: asyncio.Event = field(default_factory=asyncio.Event)  # lets /slow answer (set on stop)
    server: LoopbackServer | None = None

    async def start(self) -> PageServer:
        async def record(request: Request) -> None:
            self.hosts.append(request.headers.get("host", ""))

        def page(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
            async def wrapped(request: Request) -> Response:
                await record(request)
                return await handler(request)
            return wrapped

        async def html(_: Request) -> Response:
            return Response(HTML, media_type="text/html; charset=utf-8")

        async def latin1(_: Request) -> Response:
            return Response("<p>Caf\u00e9 cr\u00e8me</p>".encode("latin-1"), media_type="text/html; charset=iso-8859-1")

        async def json(_: Request) -> Response:
            return JSONResponse({"city": "Berlin", "temp_c": 21})

        async def text(request: Request) -> Response:
            size = int(request.query_params.get("size", "100"))
            return PlainTextResponse("a" * size)

        async def endless(_: Request) -> Response:
            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(100_000):  # about 6 GB: the client must stop reading, not the server
                    yield b"x" * 65536
            return StreamingResponse(chunks(), media_type="text/plain")

        async def slow(_: Request) -> Response:
            await self.release.wait()
            return PlainTextResponse("late")

        async def binary(_: Request) -> Response:
            return Response(b"\x89PNG\r\n\x1a\n", media_type="image/png")

        async def untyped(_: Request) -> Response:
            return Response(b"what am I")

        async def missing(_: Request) -> Response:
            return JSONResponse({"error": "no such city"}, status_code=404)

        async def redirect(request: Request) -> Response:
            return RedirectResponse(request.query_params["to"], status_code=int(request.query_params.get("s", 302)))

        async def chain(request: Request) -> Response:
            n = int(request.path_params["n"])
            return RedirectResponse(f"/chain/{n - 1}" if n > 0 else "/json", status_code=307)

        async def host(request: Request) -> Response:
            return PlainTextResponse(f"host={request.headers.get('host')}")

        routes: dict[str, Callable[[Request], Awaitable[Response]]] = {
            "/html": html, "/latin1": latin1, "/json": json, "/text": text, "/endless": endless, "/slow": slow,
            "/binary": binary, "/untyped": untyped, "/missing": missing, "/redirect": redirect,
            "/chain/{n}": chain, "/host": host,
        }
        self.server = LoopbackServer([Route(path, page(h)) for path, h in routes.items()])
        await self.server.start()
        return self

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            await self.server.stop()


class Resolver:
    """A fake DNS: names to addresses, recording each question."""

    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.names:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        return self.names[host]


def jail_sockets(loop: asyncio.AbstractEventLoop, monkeypatch: Any) -> list[Any]:
    """Make every connection the loop opens to a non-loopback address fail the test instead of leaving the
    machine (so a broken guard cannot reach the network); returns the addresses connected to."""
    connected: list[Any] = []
    real = loop.sock_connect

    async def sock_connect(sock: Any, address: Any) -> None:
        connected.append(address)
        if not ipaddress.ip_address(str(address[0]).split("%")[0]).is_loopback:
            raise AssertionError(f"a test tried to connect to {address}")
        await real(sock, address)

    monkeypatch.setattr(loop, "sock_connect", sock_connect)
    return connected
