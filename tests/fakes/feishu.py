"""A local Feishu / Lark open platform: tenant tokens, the IM send/reply API and custom bot webhooks.

It checks what the real one checks (app credentials, the Bearer token, payload shapes, the custom bot's
signature) and records what it accepted. ``plan`` makes the next send calls fail as the platform does.
Mentions are read as each message type documents them (``<at user_id="ou_...">`` in text and post, ``<at
id=ou_...>`` in a card's markdown); a tag in another spelling is refused, so a wrong one cannot pass unseen.
Also: builders of signed (and optionally encrypted) event subscription requests, as Feishu sends them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentbus.http import LoopbackServer
from tests.fakes import feishu_progress, feishu_rich

MSG_TYPES = {"text", "post", "interactive", "image", "file", "audio", "media", "sticker", "share_chat"}
AT_TAG = re.compile(r"<at\b[^>]*>")
AT_SPELLING = {"text": re.compile(r'<at user_id="([A-Za-z0-9_-]+|all)">'),
               "post": re.compile(r'<at user_id="([A-Za-z0-9_-]+|all)">'),
               "interactive": re.compile(r"<at id=([A-Za-z0-9_-]+|all)>")}


def mentions(msg_type: str, content: Any) -> list[str] | None:
    """The ids a message mentions, or None when one of its ``<at>`` tags is spelled wrong for the type."""
    texts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("text", "content") and isinstance(v, str):
                    texts.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(content)
    found: list[str] = []
    for tag in (t for text in texts for t in AT_TAG.findall(text)):
        spelled = AT_SPELLING.get(msg_type)
        hit = spelled.fullmatch(tag) if spelled else None
        if hit is None:
            return None
        found.append(hit.group(1))
    return found


# ---------------------------------------------------------------- requests as Feishu sends them


def encrypt(encrypt_key: str, plaintext: bytes, iv: bytes | None = None) -> str:
    key = hashlib.sha256(encrypt_key.encode()).digest()
    iv = iv or os.urandom(16)
    padder = padding.PKCS7(128).padder()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ct = enc.update(padder.update(plaintext) + padder.finalize()) + enc.finalize()
    return base64.b64encode(iv + ct).decode()


def event_request(
    event: dict[str, Any], *, encrypt_key: str | None = None, timestamp: int | None = None, nonce: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """(body, headers): encrypted and signed when ``encrypt_key`` is given, plain JSON otherwise."""
    plain = orjson.dumps(event)
    if encrypt_key is None:
        return plain, {"content-type": "application/json; charset=utf-8"}
    body = orjson.dumps({"encrypt": encrypt(encrypt_key, plain)})
    ts = str(timestamp if timestamp is not None else int(time.time()))
    nonce = nonce or uuid.uuid4().hex[:16]
    sig = hashlib.sha256((ts + nonce + encrypt_key).encode() + body).hexdigest()
    return body, {
        "content-type": "application/json; charset=utf-8",
        "x-lark-request-timestamp": ts,
        "x-lark-request-nonce": nonce,
        "x-lark-signature": sig,
    }


def message_event(
    *, token: str, text: str, chat_id: str = "oc_chat1", chat_type: str = "p2p", sender: str = "ou_alice",
    sender_type: str = "user", mentions: list[dict[str, Any]] | None = None, event_id: str | None = None,
    message_id: str | None = None, message_type: str = "text", content: str | None = None,
    thread_id: str | None = None,
) -> dict[str, Any]:
    """An ``im.message.receive_v1`` event (schema 2.0), as documented."""
    msg: dict[str, Any] = {
        "message_id": message_id or f"om_{uuid.uuid4().hex}",
        "create_time": str(int(time.time() * 1000)),
        "update_time": str(int(time.time() * 1000)),
        "chat_id": chat_id,
        "chat_type": chat_type,
        "message_type": message_type,
        "content": content if content is not None else orjson.dumps({"text": text}).decode(),
        "mentions": mentions or [],
        "user_agent": "Mozilla/5.0",
    }
    if thread_id:
        msg["thread_id"] = thread_id
        msg["root_id"] = "om_root"
    return {
        "schema": "2.0",
        "header": {
            "event_id": event_id or uuid.uuid4().hex,
            "event_type": "im.message.receive_v1",
            "create_time": str(int(time.time() * 1000)),
            "token": token,
            "app_id": "cli_test",
            "tenant_key": "tenant_1",
        },
        "event": {
            "sender": {
                "sender_id": {"union_id": f"on_{sender}", "user_id": f"u_{sender}", "open_id": sender},
                "sender_type": sender_type,
                "tenant_key": "tenant_1",
            },
            "message": msg,
        },
    }


def mention(key: str, open_id: str, name: str, mentioned_type: str = "user") -> dict[str, Any]:
    return {"key": key, "id": {"union_id": f"on_{open_id}", "user_id": f"u_{open_id}", "open_id": open_id},
            "name": name, "tenant_key": "tenant_1", "mentioned_type": mentioned_type}


# ---------------------------------------------------------------- the platform


def _err(code: int, msg: str, status: int = 400, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "msg": msg}, status_code=status, headers=headers)


@dataclass
class FakeFeishu:
    apps: dict[str, str]  # app_id -> app_secret
    hooks: dict[str, str | None] = field(default_factory=dict)  # custom bot token -> signing secret
    expire: int = 7200
    token_fetches: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)  # accepted IM messages
    hook_sent: list[dict[str, Any]] = field(default_factory=list)
    send_calls: int = 0
    rejected: list[str] = field(default_factory=list)
    # the next send calls answer these (status, code, msg, headers) instead of delivering (None: deliver)
    plan: list[tuple[int, int, str, dict[str, str]] | None] = field(default_factory=list)
    recalled: set[str] = field(default_factory=set)  # message ids that can no longer be replied to
    server: LoopbackServer | None = None
    _tokens: dict[str, str] = field(default_factory=dict)  # valid token -> app_id
    _uuids: dict[str, str] = field(default_factory=dict)  # uuid -> message id
    # (message_id, file_key) -> (bytes, content type, "image" or "file": the type the resource is asked as)
    resources: dict[tuple[str, str], tuple[bytes, str, str]] = field(default_factory=dict)
    images: dict[str, bytes] = field(default_factory=dict)  # uploaded: image_key -> bytes
    reactions: dict[str, dict[str, Any]] = field(default_factory=dict)  # reaction_id -> message_id, emoji_type
    reaction_log: list[tuple[str, str, str]] = field(default_factory=list)  # ("add" | "delete", message, emoji)
    patches: list[dict[str, Any]] = field(default_factory=list)  # accepted card updates, in order

    async def wait_for(self, predicate: Any, timeout: float = 30.0, hook: bool = False) -> list[dict[str, Any]]:
        """Messages (custom bot pushes with ``hook``) matching ``predicate``, once there is at least one."""
        deadline = time.monotonic() + timeout
        while True:
            hits = [m for m in (self.hook_sent if hook else self.sent) if predicate(m)]
            if hits:
                return hits
            if time.monotonic() > deadline:
                raise TimeoutError("no matching message reached the fake Feishu")
            await asyncio.sleep(0.05)

    def revoke_tokens(self) -> None:
        self._tokens.clear()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    async def start(self) -> FakeFeishu:
        self.server = LoopbackServer([
            Route("/open-apis/auth/v3/tenant_access_token/internal", self._token, methods=["POST"]),
            Route("/open-apis/im/v1/messages", self._create, methods=["POST"]),
            Route("/open-apis/im/v1/messages/{message_id}/reply", self._reply, methods=["POST"]),
            Route("/open-apis/bot/v2/hook/{token}", self._hook, methods=["POST"]),
            Route("/open-apis/im/v1/messages/{message_id}/resources/{file_key}", self._resource, methods=["GET"]),
            Route("/open-apis/im/v1/images", self._upload, methods=["POST"]),
            Route("/open-apis/im/v1/messages/{message_id}", self._patch, methods=["PATCH"]),
            Route("/open-apis/im/v1/messages/{message_id}/reactions", self._react, methods=["POST"]),
            Route("/open-apis/im/v1/messages/{message_id}/reactions/{reaction_id}", self._unreact,
                  methods=["DELETE"]),
        ])
        await self.server.start()
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()

    async def _json(self, request: Request) -> dict[str, Any] | None:
        # the official SDK sends JSON without a content type, so only a different one is refused
        if request.headers.get("content-type", "application/json").split(";")[0].strip() != "application/json":
            self.rejected.append("content-type")
            return None
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            self.rejected.append("json")
            return None
        return body if isinstance(body, dict) else None

    async def _token(self, request: Request) -> Response:
        body = await self._json(request)
        if body is None:
            return _err(9499, "Bad Request")
        self.token_fetches += 1
        app_id, secret = body.get("app_id"), body.get("app_secret")
        if app_id not in self.apps or not isinstance(secret, str) or not hmac.compare_digest(self.apps[app_id], secret):
            self.rejected.append("app credentials")
            return _err(10014, "app secret invalid")
        token = f"t-{uuid.uuid4().hex}"
        self._tokens[token] = app_id
        return JSONResponse({"code": 0, "msg": "ok", "tenant_access_token": token, "expire": self.expire})

    async def _resource(self, request: Request) -> Response:
        """GET a message's image or file: bytes on success, ``{"code", "msg"}`` JSON on error."""
        refused = self._auth(request)
        if refused is not None:
            return refused
        kind = request.query_params.get("type")
        if kind not in ("image", "file"):
            return _err(234001, "Invalid request param.")
        found = self.resources.get((request.path_params["message_id"], request.path_params["file_key"]))
        if found is None or found[2] != kind:
            return _err(234003, "File not in msg.", status=404 if found is None else 400)
        return Response(found[0], media_type=found[1])

    async def _upload(self, request: Request) -> Response:
        refused = self._auth(request)
        return refused if refused is not None else await feishu_rich.upload(request, self.images, self.rejected)

    async def _patch(self, request: Request) -> Response:
        return await feishu_progress.patch_message(self, request)

    async def _react(self, request: Request) -> Response:
        return await feishu_progress.add_reaction(self, request)

    async def _unreact(self, request: Request) -> Response:
        return await feishu_progress.delete_reaction(self, request)

    def card_of(self, message_id: str) -> dict[str, Any]:
        """A sent card as it is now (after its updates)."""
        [sent] = [m for m in self.sent if m["message_id"] == message_id]
        return dict(sent["content_json"])

    def _auth(self, request: Request) -> Response | None:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            self.rejected.append("no token")
            return _err(99991661, "Missing access token for authorization.")
        if auth[7:] not in self._tokens:
            self.rejected.append("invalid token")
            return _err(99991663, "Invalid access token for authorization. Please make a request with token attached.")
        return None

    def _check_content(self, body: dict[str, Any]) -> str | None:
        msg_type, content = body.get("msg_type"), body.get("content")
        if msg_type not in MSG_TYPES or not isinstance(content, str):
            return "msg_type and content (a JSON string) are required"
        try:
            c = orjson.loads(content)
        except orjson.JSONDecodeError:
            return "content is not JSON"
        if msg_type == "text" and not (isinstance(c, dict) and isinstance(c.get("text"), str) and c["text"]):
            return "text content needs a text"
        if msg_type == "post":
            locales = [v for k, v in c.items() if k in ("zh_cn", "en_us", "ja_jp")] if isinstance(c, dict) else []
            if not locales or not all(isinstance(v.get("content"), list) for v in locales):
                return "post content is {locale: {title, content: [[elements]]}}"
        if msg_type == "interactive" and not (isinstance(c, dict) and ("elements" in c or "body" in c or "type" in c)):
            return "interactive content is a card"
        if msg_type == "interactive" and c.get("schema") == "2.0" and (problem := feishu_rich.card_problem(c)):
            return problem
        if msg_type == "image" and not (isinstance(c, dict) and c.get("image_key") in self.images):
            return "image content needs the image_key of an uploaded image"
        if mentions(msg_type, c) is None:
            return "an <at> tag is not spelled as this message type documents"
        u = body.get("uuid")
        if u is not None and (not isinstance(u, str) or len(u) > 50):
            return "uuid is a string of at most 50 characters"
        return None

    def _planned(self) -> Response | None:
        self.send_calls += 1
        if self.plan and (planned := self.plan.pop(0)) is not None:
            status, code, msg, headers = planned
            return _err(code, msg, status, headers)
        return None

    def _deliver(self, body: dict[str, Any], chat_id: str, reply_to: str | None) -> Response:
        u = body.get("uuid")
        if u and u in self._uuids:  # "requests with the same uuid send at most one message within an hour"
            return JSONResponse({"code": 0, "msg": "success", "data": {"message_id": self._uuids[u]}})
        mid = f"om_{uuid.uuid4().hex}"
        if u:
            self._uuids[u] = mid
        content = orjson.loads(body["content"])
        self.sent.append({**body, "chat_id": chat_id, "reply_to": reply_to, "message_id": mid,
                          "content_json": content, "mentions": mentions(body["msg_type"], content),
                          "_at": time.time()})
        return JSONResponse({"code": 0, "msg": "success", "data": {
            "message_id": mid, "chat_id": chat_id, "msg_type": body["msg_type"], "body": {"content": body["content"]}}})

    async def _create(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        body = await self._json(request)
        rit = request.query_params.get("receive_id_type")
        if rit not in ("open_id", "union_id", "user_id", "email", "chat_id"):
            return _err(99992402, "field validation failed: receive_id_type")
        if body is None or not isinstance(body.get("receive_id"), str) or self._check_content(body):
            self.rejected.append("create payload")
            return _err(230001, "Your request contains an invalid request parameter.")
        if (planned := self._planned()) is not None:
            return planned
        return self._deliver(body, body["receive_id"], None)

    async def _reply(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        body = await self._json(request)
        if (body is None or self._check_content(body)
                or not isinstance(body.get("reply_in_thread", False), bool)):
            self.rejected.append("reply payload")
            return _err(230001, "Your request contains an invalid request parameter.")
        if (planned := self._planned()) is not None:
            return planned
        mid = request.path_params["message_id"]
        if mid in self.recalled:
            return _err(230011, "The message was withdrawn.")
        return self._deliver(body, "(reply)", mid)

    async def _hook(self, request: Request) -> Response:
        token = request.path_params["token"]
        if token not in self.hooks:
            return JSONResponse({"code": 19001, "msg": "param invalid: incoming webhook access token invalid"})
        body = await self._json(request)
        if body is None:
            return JSONResponse({"code": 9499, "msg": "Bad Request"})
        secret = self.hooks[token]
        if secret is not None:
            ts, sign = body.get("timestamp"), body.get("sign")
            if not isinstance(ts, str) or not ts.isdigit() or abs(time.time() - int(ts)) > 3600:
                return JSONResponse({"code": 19021, "msg": "sign match fail or timestamp is not within one hour"})
            key = f"{ts}\n{secret}".encode()
            expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
            if not isinstance(sign, str) or not hmac.compare_digest(expected, sign):
                self.rejected.append("hook sign")
                return JSONResponse({"code": 19021, "msg": "sign match fail or timestamp is not within one hour"})
        msg_type = body.get("msg_type")
        ok = (
            (msg_type == "text" and isinstance(body.get("content"), dict)
             and isinstance(body["content"].get("text"), str))
            or (msg_type == "post" and isinstance(body.get("content"), dict)
                and isinstance(body["content"].get("post"), dict))
            or (msg_type == "interactive" and isinstance(body.get("card"), dict))
        )
        found = mentions(msg_type, body.get("card") if msg_type == "interactive" else body.get("content"))
        if not ok or found is None:
            self.rejected.append("hook payload")
            return JSONResponse({"code": 9499, "msg": "Bad Request"})
        if (planned := self._planned()) is not None:
            return planned
        self.hook_sent.append({**body, "_token": token, "mentions": found})
        return JSONResponse({"code": 0, "data": {}, "msg": "success"})
