"""Slack Socket Mode: events arrive over a WebSocket the app opens, so no public request URL is needed.

One session: ``POST {api_base}/apps.connections.open`` with the app-level token (``xapp-...``) gives a
single-use ``wss://`` URL; Slack greets the socket with ``hello`` and then sends envelopes
``{envelope_id, type, payload, retry_attempt, ...}``. An ``events_api`` payload is the very JSON the Events
API would have POSTed, so the channel's webhook adapter normalises it and both modes yield the same message
and de-duplication key. The envelope is acknowledged (``{"envelope_id": ...}``) only once ``deliver``
returned, i.e. the message is on the broker; when ``deliver`` raises, no ack is sent and Slack delivers the
event again (``retry_attempt`` > 0), which the de-duplication key absorbs. An ``interactive`` envelope (a
button press) carries the interactivity payload and is handled the same way. ``disconnect`` (Slack refreshing
the link, or its ``warning`` before closing it) ends the session after the events already read are handled;
the supervisor then opens a new one.

aiohttp's WebSocket client is used rather than slack_sdk's ``SocketModeClient``: the SDK reconnects on its
own and runs listeners in tasks nobody awaits, so it could neither leave reconnects to the supervisor nor
tie an ack to the end of ``deliver``. Frames are read by one task (pings are answered while an event is
being published) and handled in order by another.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import structlog

from agentbus.channeltypes.slack import SlackChannel
from agentbus.services.ingress.channels.base import Rejected
from agentbus.services.ingress.channels.slack import SlackInbound
from agentbus.services.ingress.longconn.websocket import END, SessionEnded, WebSocketConnection

log = structlog.get_logger("agentbus.ingress.slack")



class SlackSocketMode(WebSocketConnection):
    type = "slack"
    channel: SlackChannel
    adapter: SlackInbound
    hello_timeout_s: float = 30.0  # Slack says hello at once; a socket that stays silent is not a session

    @property
    def heartbeat_s(self) -> float:
        return self.channel.socket_ping_interval_s

    async def _open_url(self) -> str:
        token = self.channel.app_token.value() if self.channel.app_token is not None else ""
        if not token.startswith("xapp-"):
            raise ValueError("app_token must be an app-level token (xapp-...) with the connections:write scope")
        resp = await self.http.post(f"{self.channel.base}/apps.connections.open",
                                    headers={"Authorization": f"Bearer {token}"})
        if resp.status_code == 429:
            raise ConnectionError(f"apps.connections.open rate limited (Retry-After {resp.headers.get('retry-after')})")
        try:
            body = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            raise ConnectionError(f"apps.connections.open: HTTP {resp.status_code}, not JSON") from None
        if not isinstance(body, dict) or body.get("ok") is not True:
            error = body.get("error") if isinstance(body, dict) else None
            raise ConnectionError(f"apps.connections.open: HTTP {resp.status_code}, error {str(error)[:80]!r}")
        url = body.get("url")
        if not isinstance(url, str) or not url.startswith(("wss://", "ws://")):
            raise ConnectionError("apps.connections.open answered without a WebSocket url")
        return url

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, frames: asyncio.Queue[Any]) -> None:
        """Read frames until the socket ends; ``hello`` must come within ``hello_timeout_s``."""
        try:
            async with asyncio.timeout(self.hello_timeout_s) as hello_deadline:
                while True:
                    msg = await ws.receive()
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        frame = _parse(msg.data)
                        if frame is None:
                            log.warning("slack_frame_unreadable", channel=self.channel.id, size=len(msg.data))
                            continue
                        if frame.get("type") == "hello":
                            hello_deadline.reschedule(None)
                            self.state.up()
                            log.info("slack_socket_up", channel=self.channel.id,
                                     connections=frame.get("num_connections"))
                            continue
                        frames.put_nowait(frame)
                        if frame.get("type") == "disconnect":
                            return
                    elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                                      aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        raise SessionEnded(f"websocket closed ({msg.type.name}, code {ws.close_code})")
        except TimeoutError:
            if not hello_deadline.expired():
                raise
            raise SessionEnded(f"no hello from Slack within {self.hello_timeout_s}s") from None
        finally:
            frames.put_nowait(END)

    async def _handle_all(self, ws: aiohttp.ClientWebSocketResponse, frames: asyncio.Queue[Any]) -> None:
        while (frame := await frames.get()) is not END:
            if ws.closed:  # what was not acknowledged comes again on the next session
                raise SessionEnded(f"websocket closed (code {ws.close_code})")
            kind = frame.get("type")
            if kind == "disconnect":
                reason = str(frame.get("reason"))[:40]
                log.info("slack_socket_disconnect", channel=self.channel.id, reason=reason)
                if reason == "link_disabled":
                    raise SessionEnded("Slack disabled Socket Mode for this app (disconnect: link_disabled)")
                continue  # the reader stopped: what it queued before is still handled
            envelope_id = frame.get("envelope_id")
            if not isinstance(envelope_id, str) or not envelope_id:
                log.warning("slack_frame_ignored", channel=self.channel.id, type=str(kind)[:40])
                continue
            if kind in ("events_api", "interactive") and await self._event(frame, envelope_id) is False:
                continue  # not acknowledged: Slack delivers it again
            if kind not in ("events_api", "interactive"):
                log.info("slack_envelope_ignored", channel=self.channel.id, type=str(kind)[:40])
            await ws.send_str(orjson.dumps({"envelope_id": envelope_id}).decode())

    async def _event(self, frame: dict[str, Any], envelope_id: str) -> bool:
        """Deliver one events_api or interactive (a button press) envelope; whether it may be acknowledged."""
        payload = frame.get("payload")
        body = payload if isinstance(payload, dict) else {}
        try:
            inbound = self.adapter.interaction(body) if frame.get("type") == "interactive" else \
                self.adapter.normalise(body)
        except Rejected as rej:
            # a malformed event does not get better by being sent again: acknowledged, nothing published
            log.warning("slack_event_rejected", channel=self.channel.id, reason=rej.reason)
            return True
        try:
            outcome = await self.deliver(inbound)
        except Exception as exc:
            self.state.last_error = f"deliver failed: {type(exc).__name__}: {exc}"[:300]
            log.warning("slack_event_not_acked", channel=self.channel.id, envelope_id=envelope_id,
                        retry_attempt=frame.get("retry_attempt"), error=str(exc)[:200])
            return False
        log.info("slack_event_delivered", channel=self.channel.id, status=outcome.status,
                 retry_attempt=frame.get("retry_attempt"))
        return True


def _parse(data: str) -> dict[str, Any] | None:
    try:
        frame = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return frame if isinstance(frame, dict) else None
