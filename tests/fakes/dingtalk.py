"""A local DingTalk: session webhooks, the robot OpenAPI with access tokens, and custom group robots.

It checks what the real one checks (token header, ``timestamp``/``sign`` of custom robots within one hour,
payload shapes, 20 messages per minute per custom robot), counts token fetches, records every message it
accepted, and can be told to answer the next send calls with a planned failure. Webhook-style messages may
carry ``at`` (``atUserIds`` / ``atMobiles`` lists of strings, ``isAtAll``): a malformed one is refused, and a
message records both the ids it at-mentions and those its text shows as ``@id`` (DingTalk shows only those).
Every call of a custom robot is timed (``robot_calls``, accepted or not), so a test can check the limit.
Cards (``actionCard``, the ``sampleActionCard*`` templates) and images (``sampleImageMsg``, markdown
``![](url)``) are checked for the fields each documents and recorded with their buttons and image URLs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentbus.http import LoopbackServer
from tests.fakes import dingtalk_progress

INVALID_TOKEN = {"code": "InvalidAuthentication", "requestid": "fake", "message": "不合法的access_token"}
QPS_LIMIT = {"code": "Forbidden.AccessDenied.QpsLimitForApi", "requestid": "fake", "message": "qps limit"}
NO_PERMISSION = {
    "code": "Forbidden.AccessDenied.AccessTokenPermissionDenied",
    "requestid": "fake",
    "message": "没有调用该接口的权限",
}
TOO_FAST = {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
SIGN_NOT_MATCH = {"errcode": 310000, "errmsg": "sign not match"}


@dataclass
class FakeDingTalk:
    app_key: str = "dingappkey0001"
    app_secret: str = "app-secret-0001"
    robots: dict[str, str | None] = field(default_factory=dict)  # custom robot access_token -> secret
    token_ttl: int = 7200
    invalid_users: set[str] = field(default_factory=set)
    robot_limit_per_minute: int = 20
    token_fetches: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    plan: list[tuple[int, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    plan_after: int = 0  # send calls to let through before the plan applies
    server: LoopbackServer | None = None
    _tokens: set[str] = field(default_factory=set)
    _sessions: dict[str, int] = field(default_factory=dict)
    _robot_sends: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    robot_calls: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # downloadCode -> (bytes, content type)
    _media_urls: dict[str, str] = field(default_factory=dict)  # path of a download URL -> downloadCode
    cards: dict[str, dict[str, Any]] = field(default_factory=dict)  # cardBizId -> the card as it is now

    def add_media(self, data: bytes, content_type: str) -> str:
        """A file a robot message carries: returns its downloadCode."""
        code = "mIofN681YE3f/+m+NntqpT" + uuid.uuid4().hex
        self.media[code] = (data, content_type)
        return code

    # ------------------------------------------------------------------ control

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def new_session(self, ttl_s: float = 5400) -> tuple[str, int]:
        """A session webhook as a robot message carries it: (URL, expiry in ms)."""
        sid = uuid.uuid4().hex
        expires = int((time.time() + ttl_s) * 1000)
        self._sessions[sid] = expires
        return f"{self.url}/robot/sendBySession?session={sid}", expires

    def expire_tokens(self) -> None:
        self._tokens.clear()

    def fail_next(
        self,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
        times: int = 1,
        after: int = 0,
    ) -> None:
        self.plan.extend([(status, body, headers or {})] * times)
        self.plan_after = after

    async def wait_for(self, predicate: Any, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            hits = [m for m in self.sent if predicate(m)]
            if hits:
                return hits
            if time.monotonic() > deadline:
                raise TimeoutError(f"no matching message; sent={self.sent!r} rejected={self.rejected!r}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), 0.5)
            except TimeoutError:
                pass

    # ------------------------------------------------------------------ checks shared by the send APIs

    def _planned(self) -> Response | None:
        if self.plan and self.plan_after > 0:
            self.plan_after -= 1
        elif self.plan:
            status, body, headers = self.plan.pop(0)
            return JSONResponse(body, status_code=status, headers=headers)
        return None

    def _record(self, via: str, raw: bytes, **extra: Any) -> None:
        self.sent.append({"via": via, "raw": raw, **extra, "at": time.time()})
        self._arrived.set()

    def _reject(self, reason: str, status: int, body: dict[str, Any]) -> Response:
        self.rejected.append(reason)
        return JSONResponse(body, status_code=status)

    @staticmethod
    def _at(body: dict[str, Any], text: str) -> dict[str, Any] | None:
        """What the message's ``at`` mentions, or None when ``at`` is malformed."""
        at = body.get("at", {})
        if not isinstance(at, dict) or not isinstance(at.get("isAtAll", False), bool):
            return None
        out: dict[str, Any] = {"at_all": at.get("isAtAll", False)}
        for key, name in (("atUserIds", "at_user_ids"), ("atMobiles", "at_mobiles")):
            ids = at.get(key, [])
            if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
                return None
            out[name] = ids
        out["shown"] = [i for i in out["at_user_ids"] + out["at_mobiles"] if f"@{i}" in text]
        return out

    @staticmethod
    def _webhook_message(body: Any) -> tuple[str, str, str | None, dict[str, Any]] | None:
        """(msgtype, text, title, what else it shows) of a webhook-style message, or None when its shape is
        wrong. An ``actionCard`` needs a title, a text and either ``singleTitle``/``singleURL`` or a non-empty
        ``btns`` list of ``{title, actionURL}``; its buttons are recorded as (title, URL) pairs."""
        if not isinstance(body, dict):
            return None
        kind = body.get("msgtype")
        if kind == "text" and isinstance(body.get("text"), dict):
            content = body["text"].get("content")
            return ("text", content, None, {}) if isinstance(content, str) and content else None
        if kind == "markdown" and isinstance(body.get("markdown"), dict):
            md = body["markdown"]
            if (
                isinstance(md.get("title"), str)
                and md["title"]
                and isinstance(md.get("text"), str)
                and md["text"]
            ):
                return "markdown", md["text"], md["title"], {"images": _md_images(md["text"])}
        if kind == "actionCard" and isinstance(body.get("actionCard"), dict):
            card = body["actionCard"]
            if not (_texts(card, "title", "text") and card.get("btnOrientation", "0") in ("0", "1")):
                return None
            if "singleTitle" in card or "singleURL" in card:
                if not _texts(card, "singleTitle", "singleURL"):
                    return None
                buttons = [(card["singleTitle"], card["singleURL"])]
            else:
                btns = card.get("btns")
                if not isinstance(btns, list) or not btns or not all(_texts(b, "title", "actionURL") for b in btns):
                    return None
                buttons = [(b["title"], b["actionURL"]) for b in btns]
            return "actionCard", card["text"], card["title"], {"buttons": buttons}
        return None

    # ------------------------------------------------------------------ endpoints

    async def _access_token(self, request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return self._reject("token: bad json", 400, {"code": "MissingParameter", "message": "bad body"})
        if body.get("appKey") != self.app_key or body.get("appSecret") != self.app_secret:
            return self._reject(
                "token: bad credentials",
                400,
                {"code": "invalidClientIdOrSecret", "message": "无效的clientId或者clientSecret"},
            )
        self.token_fetches += 1
        token = uuid.uuid4().hex
        self._tokens.add(token)
        return JSONResponse({"accessToken": token, "expireIn": self.token_ttl})

    async def _file_url(self, request: Request) -> Response:
        """downloadCode + robotCode -> a short-lived downloadUrl (on the object store, no token needed)."""
        if request.headers.get("x-acs-dingtalk-access-token") not in self._tokens:
            return self._reject("files: invalid token", 400, INVALID_TOKEN)
        body = orjson.loads(await request.body())
        if not isinstance(body, dict) or body.get("robotCode") != self.app_key:
            return self._reject("files: robotCode", 400, {"code": "invalidParameter", "message": "robotCode"})
        code = body.get("downloadCode")
        if code not in self.media:
            return self._reject("files: downloadCode", 400,
                                {"code": "unknownError", "message": "downloadCode is invalid or expired"})
        key = uuid.uuid4().hex
        self._media_urls[key] = code
        return JSONResponse({"downloadUrl": f"{self.url}/oss/{key}?Expires=3600&Signature=x"})

    async def _oss(self, request: Request) -> Response:
        code = self._media_urls.get(request.path_params["key"])
        if code is None:
            return Response(b"<Error><Code>NoSuchKey</Code></Error>", status_code=404, media_type="application/xml")
        data, ctype = self.media[code]
        return Response(data, media_type=ctype)

    async def _by_session(self, request: Request) -> Response:
        raw = await request.body()
        expires = self._sessions.get(request.query_params.get("session", ""))
        if expires is None or expires < time.time() * 1000:
            return self._reject(
                "session: unknown or expired", 200, {"errcode": 300001, "errmsg": "session过期"}
            )
        body = _loads(raw)
        msg = self._webhook_message(body)
        at = self._at(body, msg[1]) if msg is not None else None
        if msg is None or at is None:
            return self._reject(
                "session: bad message shape", 200, {"errcode": 40035, "errmsg": "缺少参数 json"}
            )
        if planned := self._planned():
            return planned
        self._record("session", raw, msgtype=msg[0], text=msg[1], title=msg[2], **msg[3], **at)
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    async def _custom_robot(self, request: Request) -> Response:
        raw = await request.body()
        q = request.query_params
        token = q.get("access_token", "")
        self.robot_calls[token].append(time.time())
        if token not in self.robots:
            return self._reject(
                "robot: unknown token", 200, {"errcode": 300001, "errmsg": "token is not exist"}
            )
        secret = self.robots[token]
        if secret is not None:
            stamp, sign = q.get("timestamp", ""), q.get("sign", "")
            if not stamp.isdigit() or abs(int(stamp) - time.time() * 1000) > 3600_000:
                return self._reject(
                    "robot: stale timestamp", 200, {"errcode": 310000, "errmsg": "invalid timestamp"}
                )
            mac = hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(base64.b64encode(mac).decode(), sign):
                return self._reject("robot: bad sign", 200, SIGN_NOT_MATCH)
        body = _loads(raw)
        msg = self._webhook_message(body)
        at = self._at(body, msg[1]) if msg is not None else None
        if msg is None or at is None:
            return self._reject(
                "robot: bad message shape", 200, {"errcode": 40035, "errmsg": "缺少参数 json"}
            )
        if planned := self._planned():
            return planned
        now = time.time()
        recent = [t for t in self._robot_sends[token] if t > now - 60]
        if len(recent) >= self.robot_limit_per_minute:
            self._robot_sends[token] = recent
            return JSONResponse(TOO_FAST)
        self._robot_sends[token] = [*recent, now]
        self._record("robot", raw, robot=token, msgtype=msg[0], text=msg[1], title=msg[2], **msg[3], **at)
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    def _openapi_message(
        self, request: Request, body: Any
    ) -> tuple[str, str, str | None, dict[str, Any]] | Response:
        if request.headers.get("x-acs-dingtalk-access-token") not in self._tokens:
            return self._reject("openapi: invalid token", 400, INVALID_TOKEN)
        if not request.headers.get("content-type", "").startswith("application/json") or not isinstance(
            body, dict
        ):
            return self._reject("openapi: not json", 400, {"code": "InvalidParameter", "message": "body"})
        if body.get("robotCode") != self.app_key:
            return self._reject(
                "openapi: robotCode", 400, {"code": "robot.not.exist", "message": "机器人不存在"}
            )
        key, param = body.get("msgKey"), _loads(body.get("msgParam", "").encode())
        shown = _template(key, param)
        if shown is None:
            return self._reject("openapi: msgKey/msgParam", 400, {"code": "param.invalid", "message": "msgParam"})
        return shown

    async def _batch_send(self, request: Request) -> Response:
        raw = await request.body()
        body = _loads(raw)
        msg = self._openapi_message(request, body)
        if isinstance(msg, Response):
            return msg
        users = body.get("userIds")
        if (
            not isinstance(users, list)
            or not 1 <= len(users) <= 20
            or not all(isinstance(u, str) for u in users)
        ):
            return self._reject("openapi: userIds", 400, {"code": "param.invalid", "message": "userIds"})
        if planned := self._planned():
            return planned
        invalid = [u for u in users if u in self.invalid_users]
        key = uuid.uuid4().hex
        if len(invalid) < len(users):
            self._record("oto", raw, users=users, msgtype=msg[0], text=msg[1], title=msg[2], key=key, **msg[3])
        return JSONResponse(
            {"processQueryKey": key, "invalidStaffIdList": invalid, "flowControlledStaffIdList": []}
        )

    async def _group_send(self, request: Request) -> Response:
        raw = await request.body()
        body = _loads(raw)
        msg = self._openapi_message(request, body)
        if isinstance(msg, Response):
            return msg
        conv = body.get("openConversationId")
        if not isinstance(conv, str) or not conv:
            return self._reject(
                "openapi: openConversationId", 400, {"code": "param.invalid", "message": "openConversationId"}
            )
        if planned := self._planned():
            return planned
        key = uuid.uuid4().hex
        self._record("group", raw, conversation=conv, msgtype=msg[0], text=msg[1], title=msg[2], key=key,
                     **msg[3])
        return JSONResponse({"processQueryKey": key})

    async def _send_card(self, request: Request) -> Response:
        return await dingtalk_progress.send_card(self, request)

    async def _update_card(self, request: Request) -> Response:
        return await dingtalk_progress.update_card(self, request)

    async def start(self) -> FakeDingTalk:
        self.server = LoopbackServer(
            [
                Route("/v1.0/oauth2/accessToken", self._access_token, methods=["POST"]),
                Route("/v1.0/robot/messageFiles/download", self._file_url, methods=["POST"]),
                Route("/oss/{key}", self._oss, methods=["GET"]),
                Route("/v1.0/robot/oToMessages/batchSend", self._batch_send, methods=["POST"]),
                Route("/v1.0/robot/groupMessages/send", self._group_send, methods=["POST"]),
                Route("/robot/sendBySession", self._by_session, methods=["POST"]),
                Route("/robot/send", self._custom_robot, methods=["POST"]),
                Route("/v1.0/im/v1.0/robot/interactiveCards/send", self._send_card, methods=["POST"]),
                Route("/v1.0/im/robots/interactiveCards", self._update_card, methods=["PUT"]),
            ]
        )
        await self.server.start()
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()


def _texts(obj: Any, *keys: str) -> bool:
    """Whether ``obj`` is an object whose ``keys`` are all non-empty strings."""
    return isinstance(obj, dict) and all(isinstance(obj.get(k), str) and obj[k] for k in keys)


def _md_images(text: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text)


def _template(key: Any, param: Any) -> tuple[str, str, str | None, dict[str, Any]] | None:
    """(msgtype, text, title, what else it shows) of a robot OpenAPI message template, or None when the
    ``msgParam`` lacks what the template needs: ``sampleText`` content; ``sampleMarkdown`` title and text;
    ``sampleImageMsg`` photoURL; ``sampleActionCard`` title, text, singleTitle, singleURL;
    ``sampleActionCard2``..``5`` title, text and actionTitle<i>/actionURL<i> for each of its 2 to 5 buttons;
    ``sampleActionCard6`` two side by side, buttonTitle<i>/buttonUrl<i>."""
    if not isinstance(param, dict):
        return None
    if key == "sampleText" and _texts(param, "content"):
        return "text", param["content"], None, {}
    if key == "sampleMarkdown" and isinstance(param.get("title"), str) and _texts(param, "text"):
        return "markdown", param["text"], param["title"], {"images": _md_images(param["text"])}
    if key == "sampleImageMsg" and _texts(param, "photoURL"):
        return "image", "", None, {"photo_url": param["photoURL"]}
    if not isinstance(key, str) or not key.startswith("sampleActionCard") or not _texts(param, "title", "text"):
        return None
    if key == "sampleActionCard" and _texts(param, "singleTitle", "singleURL"):
        buttons = [(param["singleTitle"], param["singleURL"])]
    elif key in {f"sampleActionCard{n}" for n in range(2, 6)}:
        n = int(key[-1])
        pairs = [(f"actionTitle{i}", f"actionURL{i}") for i in range(1, n + 1)]
        if not all(_texts(param, t, u) for t, u in pairs):
            return None
        buttons = [(param[t], param[u]) for t, u in pairs]
    elif key == "sampleActionCard6" and _texts(param, "buttonTitle1", "buttonUrl1", "buttonTitle2", "buttonUrl2"):
        buttons = [(param["buttonTitle1"], param["buttonUrl1"]), (param["buttonTitle2"], param["buttonUrl2"])]
    else:
        return None
    return "actionCard", param["text"], param["title"], {"buttons": buttons}


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


# ---------------------------------------------------------------------- requests as DingTalk sends them


def robot_message(
    text: str,
    *,
    conversation_id: str = "cidDirect0001==",
    group: bool = False,
    sender_staff_id: str | None = "manager0001",
    sender_id: str = "$:LWCP_v1:$sender0001",
    sender_nick: str = "张三",
    msg_id: str | None = None,
    session_webhook: str | None = None,
    expires_ms: int | None = None,
    in_at_list: bool | None = None,
    chatbot_user_id: str = "$:LWCP_v1:$bot0001",
    robot_code: str = "dingappkey0001",
    msgtype: str = "text",
) -> dict[str, Any]:
    """A robot message body, built with the official SDK's ``ChatbotMessage`` model."""
    from dingtalk_stream import ChatbotMessage
    from dingtalk_stream.chatbot import AtUser, TextContent

    m = ChatbotMessage()
    m.message_id = msg_id or f"msg{uuid.uuid4().hex}"
    m.message_type = msgtype
    if msgtype == "text":
        m.text = TextContent()
        m.text.content = text
    m.conversation_id = conversation_id
    m.conversation_type = "2" if group else "1"
    m.conversation_title = "机器人测试群" if group else None
    m.sender_id = sender_id
    m.sender_staff_id = sender_staff_id
    m.sender_nick = sender_nick
    m.chatbot_user_id = chatbot_user_id
    m.robot_code = robot_code
    m.is_in_at_list = (not group) if in_at_list is None else in_at_list
    if m.is_in_at_list and group:
        bot = AtUser()
        bot.dingtalk_id = chatbot_user_id
        m.at_users = [bot]
    m.session_webhook = session_webhook
    m.session_webhook_expired_time = expires_ms
    m.create_at = int(time.time() * 1000)
    m.chatbot_corp_id = m.sender_corp_id = "dingcorp0001"
    m.is_admin = False
    return m.to_dict()


def robot_headers(app_secret: str, timestamp_ms: int | None = None) -> dict[str, str]:
    """``timestamp`` and ``sign`` headers exactly as documented for robot messages."""
    stamp = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
    mac = hmac.new(app_secret.encode(), f"{stamp}\n{app_secret}".encode(), hashlib.sha256).digest()
    return {
        "content-type": "application/json; charset=utf-8",
        "timestamp": stamp,
        "sign": base64.b64encode(mac).decode(),
    }


def encrypted_callback(
    token: str, aes_key: str, owner_key: str, payload: dict[str, Any], timestamp_ms: int | None = None
) -> tuple[dict[str, str], bytes]:
    """(query, body) of an encrypted HTTP callback, encrypted and signed with the dingtalk-sdk crypto."""
    from dingtalk.crypto import DingTalkCrypto

    crypto = DingTalkCrypto(token, aes_key, owner_key)
    sealed = crypto.encrypt_message(orjson.dumps(payload).decode(), timestamp=timestamp_ms)
    query = {
        "msg_signature": sealed["msg_signature"],
        "timestamp": sealed["timeStamp"],
        "nonce": sealed["nonce"],
    }
    return query, orjson.dumps({"encrypt": sealed["encrypt"]})


def open_success(token: str, aes_key: str, owner_key: str, answer: bytes) -> str:
    """Verify and decrypt the encrypted "success" answer as DingTalk does (with the dingtalk-sdk crypto)."""
    from dingtalk.crypto import DingTalkCrypto

    data = orjson.loads(answer)
    crypto = DingTalkCrypto(token, aes_key, owner_key)
    return crypto.decrypt_encrypt_str(
        data["msg_signature"], data["timeStamp"], data["nonce"], data["encrypt"]
    )
