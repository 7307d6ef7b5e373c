"""A local WeCom: ``gettoken``, ``message/send`` and group robot ``webhook/send``.

It checks what the real one checks (access token, corp id and secret, agent id, payload shape, content
length in bytes, 20 messages a minute per group robot), emulates ``enable_duplicate_check``, counts token
fetches, records what it accepted, and can be told to answer the next send calls with a planned errcode.
Group robot mentions as documented: text takes ``mentioned_list`` / ``mentioned_mobile_list`` (lists of
strings; a malformed one is refused), markdown has no list and mentions with ``<@userid>`` in the content;
either way the message records whom it mentions. Every robot call is timed (``robot_calls``, accepted or not).
News messages (images by URL) are checked as documented and recorded with their articles.
Also here: callback requests as WeCom sends them, encrypted and signed with wechatpy's enterprise crypto.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentbus.http import LoopbackServer

EXPIRED = {"errcode": 42001, "errmsg": "access_token expired"}
INVALID_TOKEN = {"errcode": 40014, "errmsg": "invalid access_token"}
FREQ = {"errcode": 45009, "errmsg": "api freq out of limit"}
BUSY = {"errcode": -1, "errmsg": "system busy"}
NO_PRIVILEGE = {"errcode": 60011, "errmsg": "no privilege to access/modify contact/party/agent"}
BAD_SECRET = {"errcode": 40001, "errmsg": "invalid credential"}


@dataclass
class FakeWeCom:
    corp_id: str = "wwcorp0001"
    secret: str = "app-secret-0001"
    agent_id: int = 1000002
    robot_keys: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=lambda: {"zhangsan", "lisi"})
    token_ttl: int = 7200
    robot_limit_per_minute: int = 20
    token_fetches: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)
    suppressed: list[dict[str, Any]] = field(default_factory=list)  # dropped by the duplicate check
    rejected: list[str] = field(default_factory=list)
    plan: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    plan_after: int = 0
    server: LoopbackServer | None = None
    _tokens: set[str] = field(default_factory=set)
    _robot_sends: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    robot_calls: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    _recent: dict[tuple[str, str], float] = field(default_factory=dict)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # media_id -> (bytes, content type)
    media_fetches: int = 0

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def expire_tokens(self) -> None:
        self._tokens.clear()

    def fail_next(self, body: dict[str, Any], status: int = 200, times: int = 1, after: int = 0) -> None:
        """Answer the next ``times`` send calls with ``body``, after letting ``after`` of them through."""
        self.plan.extend([(status, body)] * times)
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

    def _err(self, reason: str, body: dict[str, Any]) -> Response:
        self.rejected.append(reason)
        return JSONResponse(body)

    def _planned(self) -> Response | None:
        if self.plan and self.plan_after > 0:
            self.plan_after -= 1
        elif self.plan:
            status, body = self.plan.pop(0)
            return JSONResponse(body, status_code=status)
        return None

    @staticmethod
    def _content(body: dict[str, Any], limits: dict[str, int]) -> tuple[str, str] | str:
        """(msgtype, content), or why the payload is refused; a news message's content is its articles' titles
        (one a line), after the documented checks: 1 to 8 articles, each with a title of at most 128 bytes, a
        URL, a description of at most 512 bytes and a picurl when given."""
        kind = body.get("msgtype")
        if kind == "news":
            articles = body["news"].get("articles") if isinstance(body.get("news"), dict) else None
            if not isinstance(articles, list) or not 1 <= len(articles) <= 8:
                return "news: 1 to 8 articles"
            for a in articles:
                if not isinstance(a, dict) or set(a) - {"title", "description", "url", "picurl"}:
                    return "news: article fields"
                title, link = a.get("title"), a.get("url")
                if not isinstance(title, str) or not title or len(title.encode()) > 128:
                    return "news: title"
                if not isinstance(link, str) or not link.startswith(("http://", "https://")):
                    return "news: url"
                if not isinstance(a.get("description", ""), str) or len(a.get("description", "").encode()) > 512:
                    return "news: description"
                if not isinstance(a.get("picurl", ""), str):
                    return "news: picurl"
            return "news", "\n".join(a["title"] for a in articles)
        if kind not in limits or not isinstance(body.get(kind), dict):
            return "msgtype"
        content = body[kind].get("content")
        if not isinstance(content, str) or not content:
            return "empty content"
        if len(content.encode()) > limits[kind]:
            return "content too long"
        return kind, content

    async def _gettoken(self, request: Request) -> Response:
        q = request.query_params
        if q.get("corpid") != self.corp_id:
            return self._err("gettoken: corpid", {"errcode": 40013, "errmsg": "invalid corpid"})
        if q.get("corpsecret") != self.secret:
            return self._err("gettoken: secret", BAD_SECRET)
        self.token_fetches += 1
        token = uuid.uuid4().hex
        self._tokens.add(token)
        return JSONResponse(
            {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": self.token_ttl}
        )

    def add_media(self, data: bytes, content_type: str = "image/jpeg") -> str:
        """A file a message refers to by its MediaId (served by media/get for three days, as WeCom keeps them)."""
        media_id = "1" + uuid.uuid4().hex + uuid.uuid4().hex[:20]
        self.media[media_id] = (data, content_type)
        return media_id

    async def _media_get(self, request: Request) -> Response:
        """media/get: the file's bytes (with its content type and a Content-Disposition naming it), or WeCom's
        JSON error answered with HTTP 200, as WeCom does."""
        q = request.query_params
        if q.get("access_token") not in self._tokens:
            return JSONResponse(INVALID_TOKEN)
        found = self.media.get(q.get("media_id", ""))
        if found is None:
            return JSONResponse({"errcode": 40007, "errmsg": "invalid media_id"})
        self.media_fetches += 1
        return Response(found[0], media_type=found[1],
                        headers={"content-disposition": 'attachment; filename="media"'})

    async def _message_send(self, request: Request) -> Response:
        if request.query_params.get("access_token") not in self._tokens:
            return self._err("send: invalid token", INVALID_TOKEN)
        raw = await request.body()
        body = _loads(raw)
        if not isinstance(body, dict):
            return self._err("send: not json", {"errcode": 40058, "errmsg": "invalid json"})
        if body.get("agentid") != self.agent_id:
            return self._err("send: agentid", {"errcode": 40056, "errmsg": "invalid agentid"})
        msg = self._content(body, {"text": 2048, "markdown": 2048})
        if isinstance(msg, str):
            return self._err(f"send: {msg}", {"errcode": 44004 if "empty" in msg else 45002, "errmsg": msg})
        if planned := self._planned():
            return planned
        users = [u for u in str(body.get("touser", "")).split("|") if u]
        invalid = [u for u in users if u not in self.users]
        if not users or len(invalid) == len(users):
            return self._err(
                "send: no valid user", {"errcode": 81013, "errmsg": "user & party & tag all invalid"}
            )
        msgid = uuid.uuid4().hex
        answer = {"errcode": 0, "errmsg": "ok", "invaliduser": "|".join(invalid), "msgid": msgid}
        entry = {"via": "app", "raw": raw, "users": users, "msgtype": msg[0], "text": msg[1], "msgid": msgid,
                 **({"articles": body["news"]["articles"]} if msg[0] == "news" else {})}
        if body.get("enable_duplicate_check") == 1:
            key = (body["touser"], raw.decode())
            interval = float(body.get("duplicate_check_interval", 1800))
            if self._recent.get(key, 0) > time.time() - interval:
                self.suppressed.append(entry)
                return JSONResponse(answer)
            self._recent[key] = time.time()
        self.sent.append({**entry, "at": time.time()})
        self._arrived.set()
        return JSONResponse(answer)

    @staticmethod
    def _mentions(kind: str, part: dict[str, Any], content: str) -> list[str] | None:
        """Whom a robot message mentions, or None when its mention lists are malformed."""
        if kind == "markdown":
            return re.findall(r"<@([^<>\s]+)>", content)
        found: list[str] = []
        for name in ("mentioned_list", "mentioned_mobile_list"):
            ids = part.get(name, [])
            if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
                return None
            found += ids
        return found

    async def _webhook_send(self, request: Request) -> Response:
        key = request.query_params.get("key", "")
        self.robot_calls[key].append(time.time())
        if key not in self.robot_keys:
            return self._err("robot: key", {"errcode": 93000, "errmsg": "invalid webhook url"})
        raw = await request.body()
        body = _loads(raw)
        msg = self._content(body if isinstance(body, dict) else {}, {"text": 2048, "markdown": 4096})
        if isinstance(msg, str):
            return self._err(f"robot: {msg}", {"errcode": 40008, "errmsg": msg})
        assert isinstance(body, dict)
        mentioned = [] if msg[0] == "news" else self._mentions(msg[0], body[msg[0]], msg[1])
        if mentioned is None:
            return self._err("robot: mentioned_list", {"errcode": 40058, "errmsg": "invalid mentioned_list"})
        if planned := self._planned():
            return planned
        now = time.time()
        recent = [t for t in self._robot_sends[key] if t > now - 60]
        if len(recent) >= self.robot_limit_per_minute:
            self._robot_sends[key] = recent
            return JSONResponse(FREQ)
        self._robot_sends[key] = [*recent, now]
        self.sent.append(
            {"via": "robot", "raw": raw, "robot": key, "msgtype": msg[0], "text": msg[1], "at": now,
             "mentioned": mentioned, **({"articles": body["news"]["articles"]} if msg[0] == "news" else {})}
        )
        self._arrived.set()
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    async def start(self) -> FakeWeCom:
        self.server = LoopbackServer(
            [
                Route("/cgi-bin/gettoken", self._gettoken, methods=["GET"]),
                Route("/cgi-bin/media/get", self._media_get, methods=["GET"]),
                Route("/cgi-bin/message/send", self._message_send, methods=["POST"]),
                Route("/cgi-bin/webhook/send", self._webhook_send, methods=["POST"]),
            ]
        )
        await self.server.start()
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


# ---------------------------------------------------------------------- callbacks as WeCom sends them


def text_message_xml(
    content: str,
    *,
    sender: str = "zhangsan",
    corp_id: str = "wwcorp0001",
    agent_id: int = 1000002,
    msg_id: str | None = None,
    msg_type: str = "text",
    media_id: str = "media",
) -> str:
    """The decrypted XML of a message sent to the app, as documented (an image's ``content`` is its PicUrl)."""
    body = f"<Content><![CDATA[{content}]]></Content>" if msg_type == "text" else ""
    if msg_type == "voice":
        body = (
            f"<MediaId><![CDATA[{media_id}]]></MediaId><Format><![CDATA[amr]]></Format>"
            f"<Recognition><![CDATA[{content}]]></Recognition>"
        )
    if msg_type == "image":
        body = f"<PicUrl><![CDATA[{content}]]></PicUrl><MediaId><![CDATA[{media_id}]]></MediaId>"
    return (
        f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><FromUserName><![CDATA[{sender}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>{body}"
        f"<MsgId>{msg_id or uuid.uuid4().int % 10**16}</MsgId><AgentID>{agent_id}</AgentID></xml>"
    )


def event_xml(
    event: str, *, sender: str = "zhangsan", corp_id: str = "wwcorp0001", agent_id: int = 1000002
) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><FromUserName><![CDATA[{sender}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event><AgentID>{agent_id}</AgentID></xml>"
    )


def _seal(
    token: str, aes_key: str, corp_id: str, plain: str, timestamp: int | None, nonce: str
) -> tuple[str, str, str]:
    from wechatpy.enterprise.crypto import WeChatCrypto

    stamp = str(timestamp if timestamp is not None else int(time.time()))
    sealed = ET.fromstring(WeChatCrypto(token, aes_key, corp_id).encrypt_message(plain, nonce, stamp))
    return sealed.findtext("Encrypt") or "", sealed.findtext("MsgSignature") or "", stamp


def callback_request(
    token: str,
    aes_key: str,
    corp_id: str,
    inner_xml: str,
    *,
    agent_id: int = 1000002,
    timestamp: int | None = None,
) -> tuple[dict[str, str], bytes]:
    """(query, body) of an encrypted message callback."""
    nonce = uuid.uuid4().hex[:10]
    encrypt, signature, stamp = _seal(token, aes_key, corp_id, inner_xml, timestamp, nonce)
    body = (
        f"<xml><ToUserName><![CDATA[{escape(corp_id)}]]></ToUserName><AgentID><![CDATA[{agent_id}]]></AgentID>"
        f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    )
    return {"msg_signature": signature, "timestamp": stamp, "nonce": nonce}, body.encode()


def verify_url_query(
    token: str, aes_key: str, corp_id: str, echo: str, timestamp: int | None = None
) -> dict[str, str]:
    """The query of the callback URL verification GET (echostr still URL-decoded)."""
    nonce = uuid.uuid4().hex[:10]
    encrypt, signature, stamp = _seal(token, aes_key, corp_id, echo, timestamp, nonce)
    return {"msg_signature": signature, "timestamp": stamp, "nonce": nonce, "echostr": encrypt}
