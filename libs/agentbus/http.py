"""The HTTP surface every service has: /healthz (alive), /readyz (consuming and connected), /metrics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

ReadyCheck = Callable[[], Awaitable[tuple[bool, str]]]


def error(status: int, reason: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": reason, **extra}, status_code=status)


def admin_app(service: str, checks: dict[str, ReadyCheck], routes: Sequence[BaseRoute] = (),
              details: dict[str, Callable[[], Any]] | None = None) -> Starlette:
    """``details`` are shown in /readyz beside the checks without deciding readiness (the state of each long
    connection: a replica whose platform connection is down still serves every webhook)."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"service": service, "status": "alive"})

    async def readyz(_: Request) -> Response:
        results: dict[str, Any] = {}
        ok = True
        for name, check in checks.items():
            try:
                good, detail = await asyncio.wait_for(check(), timeout=2.0)
            except Exception as exc:  # a failing check means not ready, with the reason shown
                good, detail = False, f"{type(exc).__name__}: {exc}"
            results[name] = {"ok": good, "detail": detail}
            ok = ok and good
        body: dict[str, Any] = {"service": service, "ready": ok, "checks": results}
        for key, describe in (details or {}).items():
            body[key] = describe()
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def http_error(_: Request, exc: Exception) -> Response:
        """Routing errors (unknown path, method not allowed) answer JSON with a reason, like every 4xx here."""
        assert isinstance(exc, HTTPException)
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            *routes,
        ],
        exception_handlers={HTTPException: http_error},
    )
    # a path with a trailing "/" that only matches without it is a 404 with a reason, not a 307: a platform
    # that follows the redirect would post its event twice, and one that does not would see neither answer
    app.router.redirect_slashes = False
    return app


def server(app: Starlette, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        loop="none",
        timeout_graceful_shutdown=10,
        backlog=4096,
        http="httptools",
    )
    return _Server(config)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the service runtime decides how to shut down."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class LoopbackServer:
    """A Starlette app served by uvicorn on the running event loop, on a free loopback port (demo inbox
    peers, test fakes, chaos fakes)."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        from agentbus.stack.procs import free_port

        self.port = free_port()
        self.app = Starlette(routes=list(routes))
        self._srv = server(self.app, "127.0.0.1", self.port)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout_s: float = 10.0) -> None:
        self._task = asyncio.create_task(self._srv.serve())
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not self._srv.started:
            if self._task.done() or asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._srv.should_exit = True
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=5)
