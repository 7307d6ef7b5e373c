"""A service's admin app (its routes plus /healthz, /readyz, its JSON errors) served on a free loopback port,
as the service runtime serves it: tests call the routes over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from starlette.routing import BaseRoute

from agentbus.http import admin_app, server
from agentbus.stack.procs import free_port


@asynccontextmanager
async def serving(service: str, routes: Sequence[BaseRoute]) -> AsyncIterator[str]:
    """Yields the base URL while the app is served."""
    port = free_port()
    srv = server(admin_app(service, {}, routes), "127.0.0.1", port)
    task = asyncio.create_task(srv.serve())
    while not srv.started:
        if task.done():
            task.result()
            raise RuntimeError(f"admin app of {service} did not start")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        await asyncio.wait({task}, timeout=10)
