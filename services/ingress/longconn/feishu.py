"""Feishu / Lark without a public URL: the long connection ("使用长连接接收事件") lark-oapi's ``ws.Client`` opens.

A session: ``POST {api_base}/callback/ws/endpoint`` with the app's id and secret returns a WebSocket URL
(its query names ``device_id`` and ``service_id``) and a ``ClientConfig`` (``PingInterval`` in seconds;
the reconnect fields are the supervisor's business here, which has its own backoff and lease). Over the
socket every message is a binary protobuf ``pbbp2.Frame`` (``feishu_frame.py``): control frames are the
client's ``ping`` and the platform's ``pong`` (which may carry a new ``ClientConfig``); data frames of
``type: event`` carry the schema 2.0 event JSON, plain and unsigned (the socket was opened with the app
secret), split into ``sum`` parts by ``seq`` when large. The event is normalised by the webhook adapter,
so both modes give the same message and the same dedupe id (``header.event_id``).

An event is answered by sending its frame back with the payload ``{"code": 200}`` and a ``biz_rt``
header, and only once ``deliver`` has returned (the message is on the broker). When ``deliver`` raises,
the answer is ``{"code": 500}``, as lark-oapi answers when a handler raises: the push failed, and Feishu,
which also re-pushes an event not answered within 3 s, sends it again; the retry has the same event id.
Events are handled concurrently (a slow broker must not hold up the pings), each answered on its own.
A press of a card's button (``card.action.trigger``) arrives as an event frame, and lark-oapi's client
answers it with its callback handler's result, base64 in the answer's ``data``: so is the press's toast
here, once the message is on the broker. A frame of type ``card`` (lark-oapi 1.7 leaves them unanswered)
that holds a ``card.action.trigger`` is read the same way, so a press is not lost whichever frame type
carries it; other ``card`` frames (the old card callback format) stay unanswered.

The connection runs on aiohttp's WebSocket client and our own frame codec rather than lark-oapi's client:
that client acknowledges an event as soon as its synchronous handler returns, runs on a module-level
event loop of its own and reconnects by itself, none of which fits ingress. A connection that sees no
``pong`` for ``MISSED_PONGS`` ping intervals is closed and ``run`` raises: a socket that died silently
(a NAT dropping it, a half-open TCP connection) is never taken for a live one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import parse_qs, urlparse

import aiohttp
import orjson
import structlog

from agentbus.channeltypes.feishu import FeishuChannel
from agentbus.services.ingress.channels.base import Rejected
from agentbus.services.ingress.channels.feishu import FeishuInbound
from agentbus.services.ingress.channels.feishu_press import CARD_ACTION
from agentbus.services.ingress.longconn import feishu_frame as ff
from agentbus.services.ingress.longconn.base import LongConnection

log = structlog.get_logger("agentbus.ingress")

ENDPOINT_PATH = "/callback/ws/endpoint"
MISSED_PONGS = 3
DEFAULT_PING_S = 120.0  # lark-oapi's default until the platform's ClientConfig says otherwise
PART_TTL_S = 30.0  # parts of a split event that are not completed within this are dropped


class FeishuStreamError(Exception):
    """The platform refused the session, or it ended."""


class FeishuLongConnection(LongConnection):
    type = "feishu"
    channel: FeishuChannel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.adapter, FeishuInbound):
            raise TypeError("FeishuLongConnection needs the Feishu inbound adapter")
        if self.channel.app_id is None or self.channel.app_secret is None:
            raise ValueError("the long connection needs app_id and app_secret")
        self._normalise = self.adapter.normalise
        self._ping_s = DEFAULT_PING_S
        self._parts: dict[str, tuple[float, list[bytes | None]]] = {}
        self._send_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    async def _endpoint(self) -> str:
        assert self.channel.app_id is not None and self.channel.app_secret is not None
        body = {"AppID": self.channel.app_id.value(), "AppSecret": self.channel.app_secret.value()}
        r = await self.http.post(self.channel.base + ENDPOINT_PATH, json=body, headers={"locale": "zh"},
                                 timeout=15.0)
        try:
            answer = r.json()
        except ValueError:
            answer = None
        if r.status_code != 200 or not isinstance(answer, dict):
            raise FeishuStreamError(f"endpoint: HTTP {r.status_code}")
        if answer.get("code") != 0:
            raise FeishuStreamError(f"endpoint refused: {answer.get('code')} {str(answer.get('msg'))[:200]}")
        raw = answer.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        url = data.get("URL")
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise FeishuStreamError("endpoint answered without a WebSocket URL")
        self._configure(data.get("ClientConfig"))
        return url

    def _configure(self, conf: Any) -> None:
        ping = conf.get("PingInterval") if isinstance(conf, dict) else None
        if isinstance(ping, int | float) and not isinstance(ping, bool) and ping > 0:
            self._ping_s = float(ping)

    async def run(self) -> None:
        error: str | None = None
        try:
            await self._session()
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self.state.down(error)

    async def _session(self) -> None:
        url = await self._endpoint()
        query = parse_qs(urlparse(url).query)
        try:
            service_id = int(query["service_id"][0])
        except (KeyError, ValueError):
            raise FeishuStreamError("WebSocket URL without a numeric service_id") from None
        async with aiohttp.ClientSession(trust_env=True) as session:
            try:
                ws = await session.ws_connect(url, autoping=True, heartbeat=None, max_msg_size=16 * 2**20,
                                              timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0))
            except aiohttp.WSServerHandshakeError as exc:
                h: Any = exc.headers or {}
                raise FeishuStreamError(f"handshake refused: {h.get('handshake-status', exc.status)} "
                                        f"{str(h.get('handshake-msg', exc.message))[:200]}") from None
            self.state.up()
            log.info("stream_connected", channel=self.channel.id, ping_s=self._ping_s)
            try:
                await self._serve(ws, service_id)
            finally:
                for task in self._tasks:
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
                await ws.close()

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse, service_id: int) -> None:
        loop = asyncio.get_running_loop()
        last_pong = next_ping = loop.time()
        while True:
            now = loop.time()
            if now - last_pong > MISSED_PONGS * self._ping_s:
                raise FeishuStreamError(f"no pong for {MISSED_PONGS} ping intervals ({self._ping_s:g}s)")
            if now >= next_ping:
                await self._send(ws, ff.ping(service_id))
                next_ping = now + self._ping_s
            wait = min(next_ping, last_pong + MISSED_PONGS * self._ping_s) - now
            try:
                msg = await ws.receive(timeout=max(wait, 0.001))
            except TimeoutError:
                continue
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                raise FeishuStreamError(f"closed by the platform ({ws.close_code})")
            if msg.type == aiohttp.WSMsgType.ERROR:
                raise FeishuStreamError(f"WebSocket error: {ws.exception()}")
            if msg.type != aiohttp.WSMsgType.BINARY:
                continue
            try:
                frame = ff.parse(msg.data)
            except ff.FrameError as exc:
                log.warning("stream_frame_unreadable", channel=self.channel.id, error=str(exc)[:200])
                continue
            if frame.method == ff.CONTROL:
                if ff.header(frame, ff.TYPE) == ff.PONG:
                    last_pong = loop.time()
                    if frame.payload:
                        self._pong_config(frame.payload)
                        next_ping = min(next_ping, last_pong + self._ping_s)
            elif frame.method == ff.DATA:
                self._data(ws, frame)

    def _pong_config(self, payload: bytes) -> None:
        try:
            self._configure(orjson.loads(payload))
        except orjson.JSONDecodeError:
            log.warning("stream_pong_unreadable", channel=self.channel.id)

    def _data(self, ws: aiohttp.ClientWebSocketResponse, frame: Any) -> None:
        kind, message_id = ff.header(frame, ff.TYPE), ff.header(frame, ff.MESSAGE_ID) or ""
        if kind not in (ff.EVENT, ff.CARD):
            log.debug("stream_frame_ignored", channel=self.channel.id, type=str(kind)[:32])
            return
        payload = self._combine(message_id, frame)
        if payload is None:
            return
        task = asyncio.create_task(self._event(ws, frame, payload, kind == ff.CARD))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _combine(self, message_id: str, frame: Any) -> bytes | None:
        """The whole payload once every part of a split event is in (``sum`` parts, indexed by ``seq``)."""
        try:
            total, seq = int(ff.header(frame, ff.SUM) or "1"), int(ff.header(frame, ff.SEQ) or "0")
        except ValueError:
            total, seq = 0, 0
        if total <= 1:
            return bytes(frame.payload) if total == 1 else None
        if not 0 <= seq < total or total > 1000:
            log.warning("stream_part_invalid", channel=self.channel.id, sum=total, seq=seq)
            return None
        now = time.monotonic()
        for mid in [m for m, (t, _) in self._parts.items() if now - t > PART_TTL_S]:
            del self._parts[mid]
        _, parts = self._parts.setdefault(message_id, (now, [None] * total))
        if len(parts) != total:
            return None
        parts[seq] = bytes(frame.payload)
        if any(p is None for p in parts):
            return None
        del self._parts[message_id]
        return b"".join(p for p in parts if p is not None)

    async def _event(self, ws: aiohttp.ClientWebSocketResponse, frame: Any, payload: bytes, card: bool) -> None:
        started = time.monotonic()
        try:
            event = orjson.loads(payload)
            if not isinstance(event, dict):
                raise Rejected(400, "event is not a JSON object")
            header = event.get("header")
            callback = isinstance(header, dict) and header.get("event_type") == CARD_ACTION
            if card and not callback:  # the old card callback format: not handled, left unanswered as lark-oapi does
                log.debug("stream_frame_ignored", channel=self.channel.id, type=ff.CARD)
                return
            inbound = self._normalise(event)
        except (orjson.JSONDecodeError, Rejected) as exc:
            # it would be malformed on every redelivery: logged and answered, never published
            log.warning("stream_event_rejected", channel=self.channel.id, reason=str(exc)[:200])
            await self._answer(ws, frame, 200, 0)
            return
        try:
            outcome = await self.deliver(inbound)
        except Exception as exc:
            self.state.last_error = f"deliver failed: {type(exc).__name__}: {exc}"[:300]
            log.warning("stream_deliver_failed", channel=self.channel.id, error=f"{type(exc).__name__}: {exc}"[:300])
            await self._answer(ws, frame, 500, None)
            return
        data = inbound.answer.body if callback else None  # a press's toast goes back in the answer
        await self._answer(ws, frame, 200, int((time.monotonic() - started) * 1000), data)
        log.debug("stream_event_delivered", channel=self.channel.id, outcome=outcome.status)

    async def _answer(self, ws: aiohttp.ClientWebSocketResponse, frame: Any, code: int, biz_rt: int | None,
                      data: bytes | None = None) -> None:
        try:
            await self._send(ws, ff.answer(frame, code, biz_rt, data))
        except (ConnectionError, aiohttp.ClientError) as exc:  # the session is ending: Feishu pushes it again
            log.warning("stream_answer_failed", channel=self.channel.id, code=code, error=str(exc)[:200])

    async def _send(self, ws: aiohttp.ClientWebSocketResponse, data: bytes) -> None:
        async with self._send_lock:
            await ws.send_bytes(data)
