"""What every fake long-connection gateway shares (Slack Socket Mode, DingTalk Stream): an aiohttp server on a
free loopback port, its WebSocket sessions (``links``), waiting for the gateway's state to change, and cutting
a session's TCP connection without a close frame.

aiohttp's web server rather than the Starlette ``LoopbackServer``: a faithful peer must send and see WebSocket
pings and cut a TCP connection without a close frame, which an ASGI app cannot do. Each gateway declares its
own ``Link`` (what the protocol needs to remember of a session) with at least ``ws`` and ``request``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from aiohttp import web

from agentbus.stack.procs import free_port


class Session(Protocol):
    ws: web.WebSocketResponse
    request: web.Request


class GatewayServer:
    """Mixed into a gateway dataclass that has ``links``, ``_changed`` (an ``asyncio.Condition``), ``_runner``
    and ``port`` fields."""

    links: list[Any]
    _changed: asyncio.Condition
    _runner: web.AppRunner | None
    port: int

    async def _serve(self, app: web.Application) -> None:
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        for link in self.links:
            if not link.ws.closed:
                await link.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait(self, predicate: Any, timeout: float = 30.0) -> None:
        """Until ``predicate()`` holds (re-checked whenever the gateway's state changes)."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    async def wait_link(self, n: int = 1) -> Any:
        """The ``n``-th WebSocket session, once it is open."""
        await self.wait(lambda: len(self.links) >= n)
        return self.links[n - 1]

    async def send_raw(self, text: str, link: Session | None = None) -> None:
        await (link or self.links[-1]).ws.send_str(text)

    def drop(self, link: Session | None = None) -> None:
        """Cut the TCP connection without a close frame (a gateway restart, a NAT timeout)."""
        transport = (link or self.links[-1]).request.transport
        assert transport is not None
        transport.abort()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
