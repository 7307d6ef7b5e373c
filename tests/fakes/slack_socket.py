"""A local Slack Socket Mode gateway: ``apps.connections.open`` and the WebSocket it hands out.

It speaks what Slack documents and slack_sdk's clients expect: ``POST /api/apps.connections.open`` with
``Authorization: Bearer xapp-...`` answers ``{"ok": true, "url": "ws://.../link/?ticket=..."}`` (the ticket
works once); the socket opens with a ``hello`` frame, carries envelopes ``{envelope_id, type, payload,
accepts_response_payload, retry_attempt, retry_reason}`` and takes acks ``{"envelope_id": ...}``; Slack asks
a client to go with a ``disconnect`` frame. It is served by aiohttp's web server rather than the Starlette
``LoopbackServer`` because a faithful peer must send its own pings, see the client's pongs and cut a TCP
connection without a close frame, none of which an ASGI app can do.

Tests push envelopes, read ``acks`` (what each connection acknowledged), refuse connections
(``open_error``, ``refuse_socket``), stop answering pings (``answer_pings``), and drop or close a link.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from aiohttp import WSMsgType, web

from tests.fakes.ws_gateway import GatewayServer

APP_ID = "A0APP00001"


@dataclass
class Link:
    """One WebSocket session as the gateway sees it."""

    ws: web.WebSocketResponse
    request: web.Request
    received: list[Any] = field(default_factory=list)  # every text frame the client sent, parsed
    pongs: list[bytes] = field(default_factory=list)
    pings: list[bytes] = field(default_factory=list)  # pings the client sent
    closed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class FakeSlackSocket(GatewayServer):
    app_tokens: set[str]
    open_error: str | None = None  # apps.connections.open answers {"ok": false, "error": ...}
    refuse_socket: bool = False  # the WebSocket upgrade is refused (HTTP 401), as for a stale ticket
    send_hello: bool = True
    answer_pings: bool = True
    opened: int = 0  # apps.connections.open calls answered ok
    links: list[Link] = field(default_factory=list)
    acks: list[dict[str, Any]] = field(default_factory=list)  # every ack of every link, in order
    _tickets: set[str] = field(default_factory=set)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _runner: web.AppRunner | None = None
    port: int = 0
    web_api: str | None = None  # every other Web API method is forwarded there (the fake Slack of replies)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    async def start(self) -> FakeSlackSocket:
        app = web.Application()
        app.router.add_post("/api/apps.connections.open", self._open)
        app.router.add_get("/link/", self._link)
        app.router.add_post("/api/{method}", self._forward)
        await self._serve(app)
        return self

    # ------------------------------------------------------------ what tests do

    def acked(self, envelope_id: str) -> bool:
        return any(a.get("envelope_id") == envelope_id for a in self.acks)

    async def push(self, payload: dict[str, Any], *, kind: str = "events_api", link: Link | None = None,
                   retry_attempt: int = 0, retry_reason: str = "", accepts_response_payload: bool = False) -> str:
        """Send one envelope on ``link`` (default: the newest); returns its ``envelope_id``."""
        target = link or self.links[-1]
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {"envelope_id": envelope_id, "payload": payload, "type": kind,
                                    "accepts_response_payload": accepts_response_payload}
        if kind == "events_api":
            envelope.update(retry_attempt=retry_attempt, retry_reason=retry_reason)
        await target.ws.send_str(orjson.dumps(envelope).decode())
        return envelope_id

    async def disconnect(self, reason: str = "refresh_requested", link: Link | None = None) -> None:
        """Slack's request that the client goes away (it opens a new connection first, then closes this one)."""
        frame = {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake-1"}}
        await (link or self.links[-1]).ws.send_str(orjson.dumps(frame).decode())

    async def ping(self, data: bytes = b"keepalive", link: Link | None = None) -> None:
        await (link or self.links[-1]).ws.ping(data)

    # ------------------------------------------------------------ the wire

    async def _open(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else (await request.post()).get("token")
        if not token:
            return web.json_response({"ok": False, "error": "not_authed"})
        if not str(token).startswith("xapp-"):
            return web.json_response({"ok": False, "error": "not_allowed_token_type"})
        if token not in self.app_tokens:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if self.open_error:
            return web.json_response({"ok": False, "error": self.open_error})
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        self.opened += 1
        url = f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={APP_ID}"
        return web.json_response({"ok": True, "url": url})

    async def _forward(self, request: web.Request) -> web.Response:
        """One base URL serves both, as slack.com does: the socket's ``apps.connections.open`` and the rest."""
        if self.web_api is None:
            return web.json_response({"ok": False, "error": "unknown_method"}, status=404)
        async with httpx.AsyncClient() as c:
            r = await c.post(f"{self.web_api}/{request.match_info['method']}", content=await request.read(),
                             headers={k: v for k, v in request.headers.items() if k.lower() != "host"})
        return web.Response(status=r.status_code, body=r.content, content_type="application/json")

    async def _link(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if self.refuse_socket or ticket not in self._tickets:
            return web.Response(status=401, text="invalid or used ticket")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        link = Link(ws, request)
        self.links.append(link)
        if self.send_hello:
            hello = {"type": "hello", "num_connections": sum(not lk.ws.closed for lk in self.links),
                     "debug_info": {"host": "applink-fake-1", "build_number": 1, "approximate_connection_time": 18060},
                     "connection_info": {"app_id": APP_ID}}
            await ws.send_str(orjson.dumps(hello).decode())
        await self._notify()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    frame = orjson.loads(msg.data)
                    link.received.append(frame)
                    if isinstance(frame, dict) and "envelope_id" in frame:
                        self.acks.append(frame)
                elif msg.type == WSMsgType.PING:
                    link.pings.append(msg.data)
                    if self.answer_pings:
                        await ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    link.pongs.append(msg.data)
                await self._notify()
        finally:
            link.closed.set()
            await self._notify()
        return ws
