"""A local Feishu / Lark long-connection gateway: the endpoint call and the WebSocket, in lark-oapi's framing.

``POST /callback/ws/endpoint`` checks the app's id and secret and answers ``{code, data: {URL,
ClientConfig}}``; the WebSocket at that URL speaks binary ``pbbp2.Frame`` (built and parsed with lark-oapi's
own generated class): it answers the client's pings with pongs (optionally carrying a new ClientConfig),
pushes events (split into ``sum`` parts when asked), and records every answer to an event. Like the
platform, it pushes an event again when it was answered with a code other than 200. It can refuse the
handshake with the platform's ``handshake-*`` headers, stop answering pings, and drop every connection.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from lark_oapi.ws.pb.pbbp2_pb2 import Frame
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from agentbus.http import LoopbackServer


@dataclass
class Ack:
    message_id: str
    code: int | None
    headers: dict[str, str]
    event_id: str | None
    data: Any = None  # a callback's answer: the JSON the client put base64 in ``data``


@dataclass
class FakeFeishuGateway:
    apps: dict[str, str]  # app_id -> app_secret
    ping_interval: float = 120
    answer_pings: bool = True
    pong_config: dict[str, Any] | None = None  # sent as the payload of every pong
    refuse: tuple[int, str, int] | None = None  # (handshake-status, handshake-msg, handshake-autherrcode)
    redeliver: bool = True  # push an event again when it was answered with a code other than 200
    server: LoopbackServer | None = None
    endpoint_calls: int = 0
    rejected: list[str] = field(default_factory=list)
    connections: int = 0  # WebSocket sessions accepted so far
    pings: list[int] = field(default_factory=list)  # service id of every ping received
    acks: list[Ack] = field(default_factory=list)
    unanswered: dict[str, dict[str, Any]] = field(default_factory=dict)  # message_id -> event
    _devices: dict[str, int] = field(default_factory=dict)  # issued device_id -> service_id
    _live: list[WebSocket] = field(default_factory=list)
    _seq: int = 0
    _owned: bool = True

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    async def start(self, on: LoopbackServer | None = None) -> FakeFeishuGateway:
        """Serve on a server of its own, or beside the IM API of a running fake (``on``): Feishu answers both
        on one host, and a channel has one ``api_base``."""
        routes = [Route("/callback/ws/endpoint", self._endpoint, methods=["POST"]), WebSocketRoute("/ws", self._ws)]
        if on is not None:
            on.app.router.routes.extend(routes)
            self.server, self._owned = on, False
            return self
        self.server = LoopbackServer(routes)
        await self.server.start()
        return self

    async def stop(self) -> None:
        await self.drop()
        if self.server is not None and self._owned:
            await self.server.stop()

    # ------------------------------------------------------------ what tests do

    async def wait_connected(self, n: int = 1, timeout: float = 15.0) -> None:
        await self._until(lambda: len(self._live) >= 1 and self.connections >= n, timeout)

    async def wait_disconnected(self, timeout: float = 15.0) -> None:
        await self._until(lambda: not self._live, timeout)

    async def wait_acks(self, n: int, timeout: float = 15.0) -> list[Ack]:
        await self._until(lambda: len(self.acks) >= n, timeout)
        return self.acks

    async def wait_pings(self, n: int, timeout: float = 15.0) -> None:
        await self._until(lambda: len(self.pings) >= n, timeout)

    async def push(self, event: dict[str, Any], parts: int = 1, kind: str = "event") -> str:
        """Send one event to the newest connection, in ``parts`` frames of type ``kind`` (``event``, or
        ``card``); returns the frame message id."""
        await self._until(lambda: bool(self._live), 15.0)
        message_id = uuid.uuid4().hex
        self.unanswered[message_id] = event
        payload = orjson.dumps(event)
        step = -(-len(payload) // parts)
        chunks = [payload[i * step:(i + 1) * step] for i in range(parts)]
        ws = self._live[-1]
        order = list(range(parts))
        if parts > 2:  # parts may arrive out of order: the client indexes them by seq
            order = [order[-1], *order[:-1]]
        for seq in order:
            await ws.send_bytes(self._data_frame(ws, message_id, parts, seq, chunks[seq], kind))
        return message_id

    async def send_raw(self, data: bytes) -> None:
        await self._until(lambda: bool(self._live), 15.0)
        await self._live[-1].send_bytes(data)

    async def drop(self) -> None:
        """Close every live connection, as the platform does when it rotates a gateway."""
        for ws in list(self._live):
            try:
                await ws.close(code=1001)
            except RuntimeError:
                pass
        self._live.clear()

    async def _until(self, cond: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise TimeoutError("the fake Feishu gateway did not see it happen")
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------ the platform

    async def _endpoint(self, request: Request) -> Response:
        self.endpoint_calls += 1
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return JSONResponse({"code": 1, "msg": "bad request"}, status_code=400)
        app_id, secret = (body.get("AppID"), body.get("AppSecret")) if isinstance(body, dict) else (None, None)
        if (not isinstance(app_id, str) or app_id not in self.apps or not isinstance(secret, str)
                or not hmac.compare_digest(self.apps[app_id], secret)):
            self.rejected.append("app credentials")
            return JSONResponse({"code": 10014, "msg": "app secret invalid"})
        device_id, service_id = uuid.uuid4().hex, 7000 + len(self._devices)
        self._devices[device_id] = service_id
        assert self.server is not None
        url = f"ws://127.0.0.1:{self.server.port}/ws?device_id={device_id}&service_id={service_id}&access_key=k"
        return JSONResponse({"code": 0, "msg": "ok", "data": {"URL": url, "ClientConfig": {
            "ReconnectCount": -1, "ReconnectInterval": 120, "ReconnectNonce": 30,
            "PingInterval": self.ping_interval}}})

    async def _ws(self, ws: WebSocket) -> None:
        device_id = ws.query_params.get("device_id", "")
        if self.refuse is not None or device_id not in self._devices:
            status, msg, auth = self.refuse or (403, "unknown device", 0)
            self.rejected.append("handshake")
            await ws.send_denial_response(Response(status_code=403, headers={
                "handshake-status": str(status), "handshake-msg": msg, "handshake-autherrcode": str(auth)}))
            return
        service_id = self._devices[device_id]
        await ws.accept()
        self.connections += 1
        self._live.append(ws)
        try:
            while True:
                data = await ws.receive_bytes()
                await self._frame(ws, service_id, data)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            if ws in self._live:
                self._live.remove(ws)

    async def _frame(self, ws: WebSocket, service_id: int, data: bytes) -> None:
        frame = Frame()
        frame.ParseFromString(data)
        headers = {h.key: h.value for h in frame.headers}
        if frame.method == 0:
            if headers.get("type") == "ping":
                self.pings.append(frame.service)
                if self.answer_pings:
                    pong = Frame(SeqID=0, LogID=0, service=service_id, method=0)
                    h = pong.headers.add()
                    h.key, h.value = "type", "pong"
                    if self.pong_config is not None:
                        pong.payload = orjson.dumps(self.pong_config)
                    await ws.send_bytes(pong.SerializeToString())
            return
        message_id = headers.get("message_id", "")
        answer = orjson.loads(frame.payload) if frame.payload else {}
        event = self.unanswered.pop(message_id, None)
        event_id = event["header"].get("event_id") if event and isinstance(event.get("header"), dict) else None
        data = orjson.loads(base64.b64decode(answer["data"])) if isinstance(answer.get("data"), str) else None
        self.acks.append(Ack(message_id, answer.get("code"), headers, event_id, data))
        if event is not None and answer.get("code") != 200 and self.redeliver:
            asyncio.get_running_loop().create_task(self.push(event))

    def _data_frame(self, ws: WebSocket, message_id: str, total: int, seq: int, chunk: bytes,
                    kind: str = "event") -> bytes:
        self._seq += 1
        device_id = ws.query_params.get("device_id", "")
        frame = Frame(SeqID=self._seq, LogID=self._seq, service=self._devices.get(device_id, 0), method=1,
                      payload=chunk)
        for k, v in (("type", kind), ("message_id", message_id), ("sum", str(total)), ("seq", str(seq)),
                     ("trace_id", uuid.uuid4().hex)):
            h = frame.headers.add()
            h.key, h.value = k, v
        return bytes(frame.SerializeToString())
