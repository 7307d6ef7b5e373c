"""The session of a platform that hands out a WebSocket URL over HTTP (Slack Socket Mode, DingTalk Stream).

One session: ask the platform for a URL (``_open_url``), open the socket with aiohttp (its own pings every
``heartbeat_s``; a link that answers none is dropped), then a reader task (``_read``) queues frames and answers
what must be answered at once while ``_handle_all`` works through the queue, delivering and acknowledging. The
split keeps the platform's pings answered while a message is being published. Whatever ends the session is raised
to the supervisor, and the link state shows it down with the reason.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from typing import Any

import aiohttp

from agentbus.services.ingress.longconn.base import LongConnection

END = object()  # queued after the last frame of a session
MAX_FRAME = 16 * 2**20


class SessionEnded(ConnectionError):
    """The WebSocket closed, broke or was refused."""


class WebSocketConnection(LongConnection):
    @property
    @abstractmethod
    def heartbeat_s(self) -> float:
        """Seconds between our WebSocket pings."""

    @abstractmethod
    async def _open_url(self) -> str:
        """The platform's single-use WebSocket URL for this session."""

    @abstractmethod
    async def _read(self, ws: aiohttp.ClientWebSocketResponse, frames: asyncio.Queue[Any]) -> None:
        """Queue the session's frames, then ``END``; raise what ended it abnormally."""

    @abstractmethod
    async def _handle_all(self, ws: aiohttp.ClientWebSocketResponse, frames: asyncio.Queue[Any]) -> None:
        """Handle queued frames until ``END``."""

    async def _opened(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """The handshake succeeded (a platform that greets first marks the session up in ``_read`` instead)."""

    async def run(self) -> None:
        error: str | None = None
        try:
            url = await self._open_url()
            async with aiohttp.ClientSession(trust_env=True) as session, session.ws_connect(
                url, heartbeat=self.heartbeat_s, autoping=True, max_msg_size=MAX_FRAME,
            ) as ws:
                await self._opened(ws)
                await self._serve(ws)
        except aiohttp.WSServerHandshakeError as exc:
            error = f"websocket refused: HTTP {exc.status}"
            raise SessionEnded(error) from exc
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self.state.down(error)

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        frames: asyncio.Queue[Any] = asyncio.Queue()
        reader = asyncio.create_task(self._read(ws, frames))
        try:
            await self._handle_all(ws, frames)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        failure = None if reader.cancelled() else reader.exception()
        if failure is not None:
            raise failure
