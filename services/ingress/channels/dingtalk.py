"""DingTalk inbound: robot messages over HTTP (or Stream mode, see longconn/dingtalk.py), and the encrypted
HTTP event callback.

Robot messages carry headers ``timestamp`` (ms) and ``sign`` = Base64(HmacSHA256(appSecret, timestamp + "\\n"
+ appSecret)); DingTalk refuses to be trusted outside one hour, and so do we. The event callback (and a robot
whose message encryption is on) posts ``{"encrypt": ...}`` with ``msg_signature``/``signature``,
``timestamp``/``timeStamp`` and ``nonce`` in the query, and expects the encrypted word "success" back,
also for the ``check_url`` handshake. Retries are de-duplicated by ``msgId``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentbus.channeltypes.dingtalk import DingTalkChannel
from agentbus.events import Chat, Sender
from agentbus.services.ingress.channels.base import HttpRequest, InboundAdapter, Rejected
from agentbus.services.ingress.channels.callback_crypto import CallbackCrypto, CryptoError
from agentbus.services.ingress.inbound import Answer, Inbound, InboundMessage, MediaItem


def robot_sign(timestamp: str, app_secret: str) -> str:
    """The ``sign`` header DingTalk sends with robot messages."""
    digest = hmac.new(app_secret.encode(), f"{timestamp}\n{app_secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class _AtUser(BaseModel):
    model_config = ConfigDict(extra="ignore")
    dingtalkId: str | None = None
    staffId: str | None = None


class RobotMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    msgId: str = Field(min_length=1, max_length=256)
    msgtype: str = Field(min_length=1, max_length=64)
    conversationId: str = Field(min_length=1, max_length=256)
    conversationType: str = Field(pattern="^[12]$")
    conversationTitle: str | None = Field(default=None, max_length=1024)
    senderId: str = Field(min_length=1, max_length=256)
    senderStaffId: str | None = Field(default=None, max_length=256)
    senderNick: str | None = Field(default=None, max_length=256)
    chatbotUserId: str | None = Field(default=None, max_length=256)
    robotCode: str | None = Field(default=None, max_length=256)
    isInAtList: bool = False
    atUsers: list[_AtUser] = Field(default_factory=list, max_length=1000)
    sessionWebhook: str | None = Field(default=None, max_length=2048)
    sessionWebhookExpiredTime: int | None = None
    text: dict[str, Any] | None = None
    content: dict[str, Any] | None = None


def message_text(m: RobotMessage) -> str | None:
    """The words of a text, rich-text or (recognised) voice message; None for anything else."""
    if m.msgtype == "text" and m.text is not None:
        value = m.text.get("content")
        return value if isinstance(value, str) else None
    if m.msgtype == "richText" and m.content is not None:
        parts = m.content.get("richText")
        if isinstance(parts, list):
            return "".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))
    if m.msgtype == "audio" and m.content is not None:
        value = m.content.get("recognition")
        return value if isinstance(value, str) else None
    return None


def media_of(m: RobotMessage, robot_code: str | None) -> tuple[MediaItem, ...]:
    """Pictures, files, voice and video (``content.downloadCode``) and the pictures of rich text; a voice
    message's ``recognition`` is its transcript (and its text)."""
    c = m.content or {}

    def item(kind: Any, code: Any, name: Any = None, transcript: Any = None) -> MediaItem | None:
        if not isinstance(code, str) or not code:
            return None
        return MediaItem(kind=kind, source={"download_code": code, "robot_code": robot_code},
                         name=name if isinstance(name, str) else None,
                         transcript=transcript if isinstance(transcript, str) and transcript else None)

    found: list[MediaItem | None] = []
    if m.msgtype == "picture":
        found.append(item("image", c.get("downloadCode") or c.get("pictureDownloadCode")))
    elif m.msgtype == "file":
        found.append(item("file", c.get("downloadCode"), c.get("fileName")))
    elif m.msgtype == "audio":
        found.append(item("audio", c.get("downloadCode"), None, c.get("recognition")))
    elif m.msgtype == "video":
        found.append(item("video", c.get("downloadCode")))
    elif m.msgtype == "richText" and isinstance(c.get("richText"), list):
        for part in c["richText"]:
            if isinstance(part, dict) and "text" not in part:
                found.append(item("image", part.get("downloadCode") or part.get("pictureDownloadCode")))
    return tuple(f for f in found if f is not None)[:10]


def _fresh(stamp: str, now: float, window_s: int, what: str) -> None:
    if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 16:
        raise Rejected(401, f"malformed {what}")
    value = int(stamp)
    seconds = (
        value / 1000 if value > 100_000_000_000 else float(value)
    )  # DingTalk uses ms; accept seconds too
    if abs(now - seconds) > window_s:
        raise Rejected(401, f"stale {what}: outside the {window_s} s window")


class DingTalkInbound(InboundAdapter):
    type = "dingtalk"
    channel: DingTalkChannel

    def __init__(self, channel: DingTalkChannel) -> None:
        super().__init__(channel)
        self._app_secret = channel.app_secret.value() if channel.app_secret else None
        app_key = channel.app_key.value() if channel.app_key else None
        self._robot_code = channel.robot_code or app_key
        self._crypto: CallbackCrypto | None = None
        if channel.callback_token and channel.callback_aes_key:
            owner = channel.callback_owner_key or app_key or ""
            self._crypto = CallbackCrypto(
                channel.callback_token.value(), channel.callback_aes_key.value(), owner
            )
        self._session_prefix = channel.oapi_base_url.rstrip("/") + "/"

    async def receive(self, request: HttpRequest) -> Inbound:
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            raise Rejected(400, "malformed JSON body") from None
        if not isinstance(body, dict):
            raise Rejected(400, "body must be a JSON object")
        if "encrypt" in body:
            return self._encrypted(request, body)
        self._check_robot_sign(request, required=True)
        return self.normalise(body)

    def normalise(self, message: dict[str, Any]) -> Inbound:
        """A robot message (an HTTP callback body, or the data of a Stream mode robot callback) as at most one
        message keyed by its ``msgId``; ``Rejected`` (422) when it is malformed."""
        return Inbound(answer=Answer(200, b"{}"), **self._robot_message(message))

    # ------------------------------------------------------------------ robot messages

    def _check_robot_sign(self, request: HttpRequest, required: bool) -> None:
        stamp, sign = request.headers.get("timestamp"), request.headers.get("sign")
        if not stamp and not sign and not required:
            return
        if not stamp or not sign:
            raise Rejected(401, "missing timestamp or sign header")
        if self._app_secret is None:
            raise Rejected(403, "this channel has no app_secret: robot messages are not accepted")
        _fresh(stamp, request.received_at, self.channel.timestamp_window_s, "timestamp header")
        expected = robot_sign(stamp, self._app_secret)
        if not hmac.compare_digest(expected.encode(), sign.encode("utf-8", "replace")):
            raise Rejected(401, "invalid signature")

    def _robot_message(self, raw: dict[str, Any]) -> dict[str, Any]:
        try:
            m = RobotMessage.model_validate(raw)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise Rejected(422, f"invalid robot message: {where}: {first['msg']}") from None
        text = message_text(m)
        media = media_of(m, m.robotCode or self._robot_code)
        if (text is None or not text.strip()) and not media:
            return {"dedupe_id": m.msgId, "note": f"{m.msgtype} message without text: not handled"}
        group = m.conversationType == "2"
        route: dict[str, Any] = {"conversation_type": "group" if group else "direct"}
        if group:
            route["open_conversation_id"] = m.conversationId
        if m.senderStaffId:
            route["user_id"] = m.senderStaffId
        if m.robotCode or self._robot_code:
            route["robot_code"] = m.robotCode or self._robot_code
        if m.sessionWebhook and m.sessionWebhook.startswith(self._session_prefix):
            route["session_webhook"] = m.sessionWebhook
            if m.sessionWebhookExpiredTime is not None:
                route["session_webhook_expires_ms"] = m.sessionWebhookExpiredTime
        bot = m.chatbotUserId
        mentions = tuple(
            u.staffId or u.dingtalkId or "" for u in m.atUsers if u.dingtalkId != bot or bot is None
        )
        return {
            "dedupe_id": m.msgId,
            "message": InboundMessage(
                platform_message_id=m.msgId,
                sender=Sender(id=m.senderStaffId or m.senderId, name=m.senderNick),
                chat=Chat(id=m.conversationId, type="group" if group else "direct", name=m.conversationTitle),
                text=(text or "").strip(),
                mentions=tuple(x for x in mentions if x),
                mentioned_bot=m.isInAtList or not group,
                reply_route=route,
                from_self=bot is not None and m.senderId == bot,
                attachments=media,
            ),
        }

    # ------------------------------------------------------------------ encrypted callbacks

    def _encrypted(self, request: HttpRequest, body: dict[str, Any]) -> Inbound:
        crypto = self._crypto
        if crypto is None:
            raise Rejected(403, "encrypted callback, but this channel has no callback_token/callback_aes_key")
        q = request.query
        signature = q.get("msg_signature") or q.get("signature")
        stamp = q.get("timestamp") or q.get("timeStamp")
        nonce = q.get("nonce")
        encrypt = body.get("encrypt")
        if not signature or not stamp or not nonce:
            raise Rejected(401, "missing msg_signature, timestamp or nonce query parameter")
        if not isinstance(encrypt, str) or not encrypt:
            raise Rejected(400, "encrypt must be a non-empty string")
        _fresh(stamp, request.received_at, self.channel.timestamp_window_s, "timestamp")
        if not crypto.verify(signature, stamp, nonce, encrypt):
            raise Rejected(401, "invalid msg_signature")
        try:
            plain = crypto.decrypt(encrypt)
        except CryptoError as err:
            raise Rejected(400, f"cannot decrypt: {err}") from None
        try:
            inner = orjson.loads(plain)
        except orjson.JSONDecodeError:
            raise Rejected(400, "decrypted payload is not JSON") from None
        if not isinstance(inner, dict):
            raise Rejected(400, "decrypted payload must be a JSON object")
        answer = self._success(crypto)
        event_type = inner.get("EventType")
        if event_type is not None:
            note = (
                "check_url handshake"
                if event_type == "check_url"
                else f"event {str(event_type)[:64]} not handled"
            )
            return Inbound(answer=answer, note=note)
        self._check_robot_sign(request, required=False)
        return Inbound(answer=answer, **self._robot_message(inner))

    @staticmethod
    def _success(crypto: CallbackCrypto) -> Answer:
        stamp = str(int(time.time() * 1000))
        nonce = secrets.token_hex(8)
        encrypt = crypto.encrypt(b"success")
        body = {
            "msg_signature": crypto.signature(stamp, nonce, encrypt),
            "timeStamp": stamp,
            "nonce": nonce,
            "encrypt": encrypt,
        }
        return Answer(200, orjson.dumps(body))
