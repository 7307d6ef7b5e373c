"""DingTalk outbound: the session webhook while it is valid, the robot OpenAPI after that, custom robots.

A message's ``sessionWebhook`` needs no token but expires (``sessionWebhookExpiredTime``); after that, or for
scheduled jobs, the app robot sends through ``/v1.0/robot/oToMessages/batchSend`` (direct chats) or
``/v1.0/robot/groupMessages/send`` (groups) with an access token from ``/v1.0/oauth2/accessToken``. Chats
listed under ``custom_robots`` go through that robot's webhook (``/robot/send`` with the documented
``timestamp``/``sign`` query, 20 messages per minute per robot). Long replies are sent in parts at UTF-8
character boundaries; a retry resumes after the last part that went through.

In groups the webhook-style sends address the asker as DingTalk documents it: ``at.atUserIds`` with the
asker's staff id, and ``@<staff id>`` in the text (DingTalk shows the mention only where the text has it).
The robot OpenAPI's message templates have no mention field, so replies sent through it mention nobody.
Cards and images: see ``dingtalk_cards`` (each is a message of its own, resumed like the parts of a text).
``progress: stream``: the answer streamed into an interactive card (``dingtalk_progress``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections import OrderedDict
from typing import Any

import httpx
import orjson

from agentbus.channeltypes.dingtalk import DingTalkChannel
from agentbus.events import ReplyGeneratedData
from agentbus.services.egress.channels.base import (
    OutboundAdapter,
    TokenCache,
    classify_http,
    retry_after_seconds,
    transport_failure,
)
from agentbus.services.egress.channels.dingtalk_cards import (
    Part,
    openapi_card,
    openapi_image,
    reply_parts,
    webhook_card,
    webhook_image,
)
from agentbus.services.egress.channels.dingtalk_progress import DingTalkProgress
from agentbus.services.egress.ports import Permanent, Pushed, Retryable

MAX_BYTES = 20000  # "message too long, exceed 20000 bytes"
# errcodes of the webhook-style APIs that mean "later": system busy, sending too fast (robot / global QPS)
RETRY_ERRCODES = {-1: 1.0, 130101: 60.0, 410100: 60.0, 90002: 1.0, 90018: 1.0}
TOKEN_INVALID_CODES = {"InvalidAuthentication"}


def custom_robot_sign(timestamp: str, secret: str) -> str:
    """Base64(HmacSHA256(secret, timestamp + "\\n" + secret)); the caller URL-encodes it into the query."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def split_utf8(text: str, max_bytes: int) -> list[str]:
    """Parts of at most ``max_bytes`` UTF-8 bytes, cut between characters (preferably at a line break)."""
    if len(text.encode()) <= max_bytes:
        return [text]
    parts: list[str] = []
    rest = text
    while rest:
        data = rest.encode()
        if len(data) <= max_bytes:
            parts.append(rest)
            break
        cut = data[:max_bytes].decode("utf-8", "ignore")
        newline = cut.rfind("\n")
        if newline > len(cut) // 2:
            cut = cut[: newline + 1]
        parts.append(cut)
        rest = rest[len(cut) :]
    return parts


def markdown_title(text: str, configured: str | None) -> str:
    if configured:
        return configured
    for line in text.splitlines():
        words = line.strip().lstrip("#>*-+ ").strip().strip("*_`")
        if words:
            return words[:32]
    return "Reply"


class DingTalkOutbound(DingTalkProgress, OutboundAdapter):
    type = "dingtalk"
    default_rate_per_minute = 20
    channel: DingTalkChannel

    def __init__(self, channel: DingTalkChannel, http: httpx.AsyncClient, tokens: TokenCache) -> None:
        super().__init__(channel, http, tokens)
        self._app_key = channel.app_key.value() if channel.app_key else None
        self._app_secret = channel.app_secret.value() if channel.app_secret else None
        self._robot_code = channel.robot_code or self._app_key
        self._robots = {
            chat: (r.access_token.value(), r.secret.value() if r.secret else None)
            for chat, r in channel.custom_robots.items()
        }
        # the limit is the robot's, whichever chats it serves: they share the first such chat's target
        first: dict[str, str] = {}
        self._robot_names = {chat: first.setdefault(token, chat) for chat, (token, _) in self._robots.items()}
        self._api = channel.api_base_url.rstrip("/")
        self._oapi = channel.oapi_base_url.rstrip("/")
        self._progress: OrderedDict[uuid.UUID, int] = OrderedDict()

    def target(self, reply: ReplyGeneratedData) -> str:
        if reply.chat.id in self._robots:
            return f"{self.channel.id}:robot:{self._robot_names[reply.chat.id]}"
        return f"{self.channel.id}:{reply.chat.id}"

    def _mention(self, reply: ReplyGeneratedData) -> str | None:
        """The staff id a group reply at-mentions (only staff ids can be; the OpenAPI cannot at all)."""
        staff = reply.reply_route.get("user_id")
        return staff if self.addressee(reply) is not None and isinstance(staff, str) and staff else None

    async def push(self, reply: ReplyGeneratedData, reply_id: uuid.UUID) -> Pushed:
        mention = self._mention(reply)
        parts = reply_parts(reply, split_utf8, MAX_BYTES - (len(mention.encode()) + 3 if mention else 0))
        start = self._progress.get(reply_id, 0)
        pushed = Pushed()
        try:
            for i in range(start, len(parts)):
                first_text = i == 0 and not parts[i].buttons and parts[i].image is None
                pushed = await self._push_part(reply, parts[i], mention if first_text else None)
                self._progress[reply_id] = i + 1
                while len(self._progress) > 10000:
                    self._progress.popitem(last=False)
        except Permanent:
            self._progress.pop(reply_id, None)
            raise
        self._progress.pop(reply_id, None)
        return pushed

    async def _push_part(self, reply: ReplyGeneratedData, part: Part, mention: str | None) -> Pushed:
        if reply.chat.id in self._robots:
            return await self._custom_robot(reply.chat.id, self._webhook_body(reply, part, mention))
        route = reply.reply_route
        session = route.get("session_webhook")
        expires_ms = route.get("session_webhook_expires_ms")
        margin_ms = self.channel.session_webhook_margin_s * 1000
        if (
            isinstance(session, str)
            and session.startswith(self._oapi + "/")  # only DingTalk's own session webhooks are used
            and isinstance(expires_ms, int)
            and expires_ms - margin_ms > time.time() * 1000
        ):
            try:
                return await self._webhook_call(session, self._webhook_body(reply, part, mention),
                                                "session webhook")
            except Permanent:
                if self._app_secret is None:
                    raise
                # the session was refused (expired early, revoked): nothing was sent, so the OpenAPI may try
        if self._app_secret is None:
            raise Permanent("no valid session webhook and no app credentials to use the robot OpenAPI")
        return await self._openapi(reply, part)

    # ------------------------------------------------------------------ webhook style (session, custom robot)

    def _webhook_body(self, reply: ReplyGeneratedData, part: Part, mention: str | None = None) -> bytes:
        if part.image is not None:
            return orjson.dumps(webhook_image(part.image))
        text = part.text
        if part.buttons:
            title = part.card_title or markdown_title(text, self.channel.markdown_title)
            return orjson.dumps(webhook_card(title, text, part.buttons))
        body: dict[str, Any]
        if reply.format == "markdown":
            title = markdown_title(text, self.channel.markdown_title)
            shown = f"@{mention}\n\n{text}" if mention else text
            body = {"msgtype": "markdown", "markdown": {"title": title, "text": shown}}
        else:
            body = {"msgtype": "text", "text": {"content": f"@{mention} {text}" if mention else text}}
        if mention:
            body["at"] = {"atUserIds": [mention], "isAtAll": False}
        return orjson.dumps(body)

    async def _custom_robot(self, chat: str, body: bytes) -> Pushed:
        token, secret = self._robots[chat]
        params = {"access_token": token}
        if secret is not None:
            stamp = str(int(time.time() * 1000))
            params.update(timestamp=stamp, sign=custom_robot_sign(stamp, secret))
        url = str(httpx.URL(f"{self._oapi}/robot/send", params=params))
        return await self._webhook_call(url, body, "custom robot")

    async def _webhook_call(self, url: str, body: bytes, what: str) -> Pushed:
        try:
            resp = await self.http.post(url, content=body, headers={"content-type": "application/json"})
        except httpx.TransportError as exc:
            raise transport_failure(exc) from exc
        classify_http(resp)
        try:
            data = resp.json()
            code = int(data.get("errcode", 0))
        except (ValueError, TypeError, AttributeError):
            raise Retryable(f"{what}: unreadable answer", resp.status_code, ambiguous=True) from None
        if code == 0:
            return Pushed(http_status=resp.status_code)
        msg = str(data.get("errmsg", ""))[:200]
        if code in RETRY_ERRCODES:
            raise Retryable(f"{what}: errcode {code}: {msg}", resp.status_code, RETRY_ERRCODES[code])
        raise Permanent(f"{what}: errcode {code}: {msg}", resp.status_code)

    # ------------------------------------------------------------------ robot OpenAPI

    async def _token(self) -> str:
        async def fetch() -> tuple[str, float]:
            try:
                resp = await self.http.post(
                    f"{self._api}/v1.0/oauth2/accessToken",
                    content=orjson.dumps({"appKey": self._app_key, "appSecret": self._app_secret}),
                    headers={"content-type": "application/json"},
                )
            except httpx.TransportError as exc:
                raise Retryable(f"access token: {type(exc).__name__}: {exc}") from exc
            if resp.status_code == 429 or resp.status_code >= 500:
                raise Retryable(
                    f"access token: HTTP {resp.status_code}", resp.status_code, retry_after_seconds(resp)
                )
            data = _json(resp)
            token, ttl = data.get("accessToken"), data.get("expireIn")
            if resp.status_code >= 300 or not isinstance(token, str) or not token:
                raise Permanent(
                    f"access token refused: HTTP {resp.status_code} {_code(data)}", resp.status_code
                )
            return token, float(ttl) if isinstance(ttl, (int, float)) else 7200.0

        return await self.tokens.get(self._token_key, fetch)

    @property
    def _token_key(self) -> str:
        return f"dingtalk:{self._app_key}"

    async def _openapi(self, reply: ReplyGeneratedData, part: Part) -> Pushed:
        route = reply.reply_route
        text = part.text
        if part.image is not None:
            key, param = openapi_image(part.image)
        elif part.buttons:
            key, param = openapi_card(part.card_title or markdown_title(text, self.channel.markdown_title), text,
                                      part.buttons)
        elif reply.format == "markdown":
            key, param = (
                "sampleMarkdown",
                {"title": markdown_title(text, self.channel.markdown_title), "text": text},
            )
        else:
            key, param = "sampleText", {"content": text}
        body: dict[str, Any] = {
            "robotCode": route.get("robot_code") or self._robot_code,
            "msgKey": key,
            "msgParam": orjson.dumps(param).decode(),
        }
        group = (route.get("conversation_type") or reply.chat.type) == "group"
        if group:
            body["openConversationId"] = route.get("open_conversation_id") or reply.chat.id
            path = "/v1.0/robot/groupMessages/send"
        else:
            user = route.get("user_id") or (None if route else reply.chat.id)
            if not user:
                raise Permanent("direct chat without the sender's staff id: the OpenAPI cannot address it")
            body["userIds"] = [user]
            path = "/v1.0/robot/oToMessages/batchSend"
        resp, data = await self._openapi_call(path, body)
        if not group:
            if body["userIds"][0] in (data.get("invalidStaffIdList") or []):
                raise Permanent(f"invalid staff id {body['userIds'][0]!r}", resp.status_code)
            if body["userIds"][0] in (data.get("flowControlledStaffIdList") or []):
                raise Retryable("the user is flow controlled", resp.status_code, 60.0)
        return Pushed(http_status=resp.status_code, platform_message_id=data.get("processQueryKey"))

    async def _openapi_call(self, path: str, body: dict[str, Any],
                            method: str = "POST") -> tuple[httpx.Response, dict[str, Any]]:
        """One robot OpenAPI call with the app's access token (refreshed once when refused)."""
        for refreshed in (False, True):
            token = await self._token()
            try:
                resp = await self.http.request(
                    method, self._api + path,
                    content=orjson.dumps(body),
                    headers={"content-type": "application/json", "x-acs-dingtalk-access-token": token},
                )
            except httpx.TransportError as exc:
                raise transport_failure(exc) from exc
            data = _json(resp)
            code = _code(data)
            if resp.status_code in (400, 401) and code in TOKEN_INVALID_CODES:
                self.tokens.invalidate(self._token_key)
                if not refreshed:
                    continue
                raise Retryable(f"access token refused right after a refresh: {code}", resp.status_code)
            if resp.status_code == 403 and code.startswith("Forbidden.AccessDenied.QpsLimit"):
                raise Retryable(
                    f"OpenAPI rate limited: {code}", resp.status_code, retry_after_seconds(resp) or 1.0
                )
            if resp.status_code >= 300 and not (
                resp.status_code in (408, 425, 429) or resp.status_code >= 500
            ):
                raise Permanent(
                    f"OpenAPI HTTP {resp.status_code} {code}: {str(data.get('message', ''))[:200]}",
                    resp.status_code,
                )
            classify_http(resp)
            return resp, data
        raise AssertionError("unreachable")


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _code(data: dict[str, Any]) -> str:
    code = data.get("code")
    return code if isinstance(code, str) else ""
