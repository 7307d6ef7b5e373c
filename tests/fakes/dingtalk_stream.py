"""A local DingTalk Stream gateway: ``POST /v1.0/gateway/connections/open`` and the WebSocket it points to.

It follows the Stream protocol as DingTalk documents it (open-dingtalk developerpedia, "协议描述") and as the
``dingtalk_stream`` SDK speaks it: the open call checks clientId/clientSecret and the subscriptions and
answers ``{endpoint, ticket}``; a ticket opens one connection only; every frame is ``{specVersion, type,
headers{appId, connectionId, topic, messageId, contentType, time}, data}`` with ``data`` a JSON string; the
client answers ``{code, headers{messageId, contentType}, message, data}``. A robot message stays pending
until a ``code: 200`` answer carries its messageId; a connection opened later is sent the pending ones again
(with new messageIds, as DingTalk re-pushes what was not acknowledged). It is served by aiohttp's web server
rather than the Starlette ``LoopbackServer`` because a faithful peer must see the client's WebSocket pings
and cut a TCP connection without a close frame, which an ASGI app cannot do.

Tests push robot messages, events and SYSTEM pings, send ``disconnect``, drop or close a link, refuse the
next opens (``open_status``) or handshakes (``refuse_socket``), and stop answering pings (``answer_pings``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from tests.fakes.ws_gateway import GatewayServer

ROBOT_TOPIC = "/v1.0/im/bot/messages/get"
APP_ID = "fake-app-id-0001"
BAD_CREDENTIALS = {"code": "invalidClientIdOrSecret", "requestid": "fake", "message": "无效的clientId或者clientSecret"}
_ids = itertools.count(1)


def _message_id() -> str:
    return f"{uuid.uuid4().hex[:8]}_{next(_ids)}_{int(time.time() * 1000):x}"


def _now_ms() -> str:
    return str(int(time.time() * 1000))


@dataclass
class Link:
    """One WebSocket session as the gateway sees it."""

    ws: web.WebSocketResponse
    request: web.Request
    subscriptions: list[dict[str, str]]
    connection_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    received: list[Any] = field(default_factory=list)  # every text frame the client sent, parsed
    pings: list[bytes] = field(default_factory=list)  # WebSocket pings the client sent
    closed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class FakeDingTalkStream(GatewayServer):
    client_id: str = "dingappkey0001"
    client_secret: str = "app-secret-0001"
    open_status: int | None = None  # the open call answers this status (e.g. 503) instead of a ticket
    refuse_socket: bool = False  # the WebSocket upgrade is refused (HTTP 403), as for a used ticket
    answer_pings: bool = True
    opens: list[dict[str, Any]] = field(default_factory=list)  # every accepted open call's body
    links: list[Link] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)  # every frame any client sent, in order
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)  # messageId -> robot CALLBACK, unacked
    acked: list[str] = field(default_factory=list)  # messageIds answered with code 200, in order
    _tickets: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # ticket -> its subscriptions
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeDingTalkStream:
        app = web.Application()
        app.router.add_post("/v1.0/gateway/connections/open", self._open)
        app.router.add_get("/connect", self._connect)
        await self._serve(app)
        return self

    # ------------------------------------------------------------ what tests do

    def answer_to(self, message_id: str) -> dict[str, Any] | None:
        return next((a for a in self.answers if a.get("headers", {}).get("messageId") == message_id), None)

    async def push_robot_message(self, message: dict[str, Any], link: Link | None = None) -> str:
        """Push a robot message (the JSON of the HTTP robot callback) as a CALLBACK frame; its messageId."""
        target = link or self.links[-1]
        frame = self._frame(target, "CALLBACK", ROBOT_TOPIC, orjson.dumps(message).decode())
        self.pending[frame["headers"]["messageId"]] = frame
        await target.ws.send_str(orjson.dumps(frame).decode())
        return str(frame["headers"]["messageId"])

    async def redeliver(self, message_id: str, link: Link | None = None) -> str:
        """Push an unacknowledged robot message again (a new messageId, the same data)."""
        old = self.pending.pop(message_id)
        return await self.push_robot_message(orjson.loads(old["data"]), link)

    async def push(self, kind: str, topic: str, data: dict[str, Any], link: Link | None = None,
                   **headers: str) -> str:
        """Any other frame (an EVENT, a CALLBACK of another topic, a SYSTEM frame); its messageId."""
        target = link or self.links[-1]
        frame = self._frame(target, kind, topic, orjson.dumps(data).decode())
        frame["headers"].update(headers)
        await target.ws.send_str(orjson.dumps(frame).decode())
        return str(frame["headers"]["messageId"])

    async def ping(self, link: Link | None = None) -> tuple[str, str]:
        """A SYSTEM ping; (messageId, opaque)."""
        opaque = uuid.uuid4().hex
        return await self.push("SYSTEM", "ping", {"opaque": opaque}, link), opaque

    async def disconnect(self, reason: str = "connection is expired", link: Link | None = None) -> str:
        """The graceful ``disconnect``: the client should finish what it read and close."""
        return await self.push("SYSTEM", "disconnect", {"reason": reason}, link)

    async def ws_ping(self, data: bytes, link: Link | None = None) -> None:
        await (link or self.links[-1]).ws.ping(data)

    # ------------------------------------------------------------ the wire

    @staticmethod
    def _frame(link: Link, kind: str, topic: str, data: str) -> dict[str, Any]:
        return {"specVersion": "1.0", "type": kind, "data": data,
                "headers": {"appId": APP_ID, "connectionId": link.connection_id, "contentType": "application/json",
                            "messageId": _message_id(), "time": _now_ms(), "topic": topic}}

    async def _open(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return web.json_response({"code": "MissingParameter", "message": "body is not JSON"}, status=400)
        if self.open_status is not None:
            return web.json_response({"code": "ServiceUnavailable", "message": "系统繁忙"}, status=self.open_status)
        if not isinstance(body, dict) or body.get("clientId") != self.client_id \
                or body.get("clientSecret") != self.client_secret:
            return web.json_response(BAD_CREDENTIALS, status=401)
        subs = body.get("subscriptions")
        if not isinstance(subs, list) or not subs or not all(
                isinstance(s, dict) and s.get("type") in ("EVENT", "CALLBACK") and isinstance(s.get("topic"), str)
                and (s["type"] != "EVENT" or s["topic"] == "*") for s in subs):
            return web.json_response({"code": "InvalidParameter", "message": "subscriptions"}, status=400)
        self.opens.append(body)
        ticket = str(uuid.uuid4())
        self._tickets[ticket] = subs
        return web.json_response({"endpoint": f"ws://127.0.0.1:{self.port}/connect", "ticket": ticket})

    async def _connect(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if self.refuse_socket or ticket not in self._tickets:
            return web.Response(status=403, text="invalid or used ticket")
        subscriptions = self._tickets.pop(ticket)
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        link = Link(ws, request, subscriptions)
        self.links.append(link)
        if any(s["type"] == "CALLBACK" and s["topic"] == ROBOT_TOPIC for s in link.subscriptions):
            for mid in list(self.pending):  # not acknowledged on an earlier connection
                await self.redeliver(mid, link)
        await self._notify()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._answered(link, msg.data)
                elif msg.type == WSMsgType.PING:
                    link.pings.append(msg.data)
                    if self.answer_pings:
                        await ws.pong(msg.data)
                await self._notify()
        finally:
            link.closed.set()
            await self._notify()
        return ws

    def _answered(self, link: Link, raw: str) -> None:
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            answer = {"unparsable": raw}
        link.received.append(answer)
        self.answers.append(answer)
        headers = answer.get("headers") if isinstance(answer, dict) else None
        mid = headers.get("messageId") if isinstance(headers, dict) else None
        if answer.get("code") == 200 and isinstance(mid, str) and mid in self.pending:
            del self.pending[mid]
            self.acked.append(mid)
