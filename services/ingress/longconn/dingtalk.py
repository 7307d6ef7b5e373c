"""DingTalk Stream mode: robot messages arrive over a WebSocket the app opens, so no public URL is needed.

One session: ``POST {stream_base}/v1.0/gateway/connections/open`` with the app's Client ID and Secret and
the subscriptions gives ``{endpoint, ticket}``; ``endpoint?ticket=...`` is a WebSocket that carries frames
``{specVersion, type: SYSTEM|EVENT|CALLBACK, headers{messageId, topic, contentType, ...}, data}`` with
``data`` a JSON string. DingTalk accepts the session by completing the handshake (there is no greeting).
A CALLBACK on ``/v1.0/im/bot/messages/get`` carries the very JSON the HTTP robot callback would have
POSTed, so the webhook adapter normalises it and both modes yield the same message and de-duplication key
(the ``msgId``). It is answered ``{code: 200, headers{contentType, messageId}, message, data}`` only once
``deliver`` returned, i.e. the message is on the broker; when ``deliver`` raises, nothing is answered and
DingTalk pushes the message again, which the key absorbs. A SYSTEM ``ping`` is answered at once with its
own data (also while a message is being published); a SYSTEM ``disconnect`` (the gateway moving the
client elsewhere) ends the session after the frames already read are handled; the supervisor then opens a
new one. Only the robot topic is subscribed: subscribing to ``EVENT *`` would mean acknowledging and
dropping every event the app is subscribed to.

aiohttp's WebSocket client is used rather than ``dingtalk_stream.DingTalkStreamClient``: the SDK reconnects
on its own, opens the connection with blocking ``requests`` calls, handles each frame in a task nobody
awaits and logs its handler's errors away, so it could neither leave reconnects to the supervisor nor tie
an acknowledgement to the end of ``deliver``.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote_plus

import aiohttp
import orjson
import structlog

from agentbus.channeltypes.dingtalk import DingTalkChannel
from agentbus.services.ingress.channels.base import Rejected
from agentbus.services.ingress.channels.dingtalk import DingTalkInbound
from agentbus.services.ingress.longconn.websocket import END, SessionEnded, WebSocketConnection

log = structlog.get_logger("agentbus.ingress.dingtalk")

ROBOT_TOPIC = "/v1.0/im/bot/messages/get"
JSON = "application/json"


class DingTalkStream(WebSocketConnection):
    type = "dingtalk"
    channel: DingTalkChannel
    adapter: DingTalkInbound

    @property
    def heartbeat_s(self) -> float:
        return self.channel.socket_ping_interval_s

    async def _opened(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.state.up()  # DingTalk sends no greeting: the accepted handshake is the session
        log.info("dingtalk_stream_up", channel=self.channel.id)

    async def _open_url(self) -> str:
        key, secret = self.channel.app_key, self.channel.app_secret
        if key is None or secret is None:
            raise ValueError("stream mode needs app_key and app_secret (the app's Client ID and Client Secret)")
        body = {"clientId": key.value(), "clientSecret": secret.value(), "ua": "agentbus",
                "subscriptions": [{"type": "CALLBACK", "topic": ROBOT_TOPIC}]}
        resp = await self.http.post(f"{self.channel.stream_base}/v1.0/gateway/connections/open",
                                    content=orjson.dumps(body),
                                    headers={"content-type": JSON, "accept": JSON})
        try:
            answer = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            raise ConnectionError(f"connections/open: HTTP {resp.status_code}, not JSON") from None
        if resp.status_code != 200 or not isinstance(answer, dict):
            code = answer.get("code") if isinstance(answer, dict) else None
            raise ConnectionError(f"connections/open: HTTP {resp.status_code}, code {str(code)[:80]!r}")
        endpoint, ticket = answer.get("endpoint"), answer.get("ticket")
        if not isinstance(endpoint, str) or not endpoint.startswith(("wss://", "ws://")) \
                or not isinstance(ticket, str) or not ticket:
            raise ConnectionError("connections/open answered without a WebSocket endpoint and ticket")
        return f"{endpoint}?ticket={quote_plus(ticket)}"

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, frames: asyncio.Queue[Any]) -> None:
        """Read frames until the socket ends or DingTalk says ``disconnect``; pings are answered here."""
        try:
            while True:
                msg = await ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    frame = _parse(msg.data)
                    if frame is None:
                        log.warning("dingtalk_frame_unreadable", channel=self.channel.id, size=len(msg.data))
                        continue
                    headers = frame["headers"]
                    if frame.get("type") == "SYSTEM" and headers.get("topic") == "ping":
                        await ws.send_str(_answer(headers, 200, "OK", frame.get("data") or "{}"))
                        continue
                    frames.put_nowait(frame)
                    if frame.get("type") == "SYSTEM" and headers.get("topic") == "disconnect":
                        return
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                                  aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    raise SessionEnded(f"websocket closed ({msg.type.name}, code {ws.close_code})")
        finally:
            frames.put_nowait(END)

    async def _handle_all(self, ws: aiohttp.ClientWebSocketResponse, frames: asyncio.Queue[Any]) -> None:
        while (frame := await frames.get()) is not END:
            if ws.closed:  # what was not acknowledged comes again on the next session
                raise SessionEnded(f"websocket closed (code {ws.close_code})")
            kind, headers = frame.get("type"), frame["headers"]
            topic = str(headers.get("topic"))[:80]
            if kind == "SYSTEM":
                # answered as the SDK answers every SYSTEM frame; the reader stopped after a disconnect,
                # and what it queued before is still handled
                log.info("dingtalk_stream_system", channel=self.channel.id, topic=topic,
                         reason=str(_data(frame).get("reason"))[:80])
                await ws.send_str(_answer(headers, 200, "OK", frame.get("data") or "{}"))
                continue
            if not isinstance(headers.get("messageId"), str) or not headers["messageId"]:
                log.warning("dingtalk_frame_ignored", channel=self.channel.id, type=str(kind)[:40], topic=topic)
                continue
            if kind == "CALLBACK" and topic == ROBOT_TOPIC:
                answer = await self._robot(frame)
                if answer is None:
                    continue  # not acknowledged: DingTalk pushes it again
                await ws.send_str(answer)
                continue
            # nothing else is subscribed; answered as the SDK answers a topic without a handler
            log.info("dingtalk_frame_not_handled", channel=self.channel.id, type=str(kind)[:40], topic=topic)
            await ws.send_str(_answer(headers, 404, "not implement", orjson.dumps({"response": None}).decode()))

    async def _robot(self, frame: dict[str, Any]) -> str | None:
        """Deliver one robot message; the answer to send, or None when it must not be acknowledged."""
        headers = frame["headers"]
        try:
            inbound = self.adapter.normalise(_data(frame))
        except Rejected as rej:
            # a malformed message does not get better by being pushed again: acknowledged, nothing published
            log.warning("dingtalk_message_rejected", channel=self.channel.id, reason=rej.reason)
            return _answer(headers, 200, "OK", orjson.dumps({"response": None}).decode())
        try:
            outcome = await self.deliver(inbound)
        except Exception as exc:
            self.state.last_error = f"deliver failed: {type(exc).__name__}: {exc}"[:300]
            log.warning("dingtalk_message_not_acked", channel=self.channel.id, message_id=headers["messageId"],
                        error=str(exc)[:200])
            return None
        log.info("dingtalk_message_delivered", channel=self.channel.id, status=outcome.status)
        return _answer(headers, 200, "OK", orjson.dumps({"response": None}).decode())


def _answer(headers: dict[str, Any], code: int, message: str, data: str) -> str:
    """The frame answering ``headers``' message (what the SDK's ``AckMessage.to_dict`` builds)."""
    return orjson.dumps({"code": code, "headers": {"contentType": JSON, "messageId": headers.get("messageId")},
                         "message": message, "data": data}).decode()


def _parse(data: str) -> dict[str, Any] | None:
    try:
        frame = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(frame, dict) or not isinstance(frame.get("headers"), dict):
        return None
    return frame


def _data(frame: dict[str, Any]) -> dict[str, Any]:
    """A frame's ``data``: a JSON object encoded as a string (``{}`` when it is anything else)."""
    raw = frame.get("data")
    try:
        value = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
