"""WeCom outbound: ``cgi-bin/message/send`` as the app, ``cgi-bin/webhook/send`` for group robots.

The app's access token comes from ``cgi-bin/gettoken`` (corpid + corpsecret), is cached until shortly before
``expires_in`` and is refreshed once more when WeCom answers 42001 (expired), 40014 (invalid) or 41001
(missing). Errcodes 45009 (api freq out of limit), 45033 and -1 (system busy) are retried; other errcodes are
permanent. Content longer than WeCom takes (2048 bytes; 4096 for robot markdown) is sent in parts cut between
characters, and a retry resumes after the last part that went through.

Cards become text (``parts_text``): a group robot cannot receive a press, and the app's template cards would
need a callback for ``template_card_event`` this channel does not serve yet. Images by URL go as a ``news``
message (the platform fetches ``picurl``) after the text; files are lines with their URL.

A group robot's reply to a person's message mentions them: ``mentioned_list`` (their userid) for text, and
``<@userid>`` in the content for markdown, which has no mention list. The limit of 20 a minute is the
robot's, so chats sharing one robot key share one target.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import Any

import httpx
import orjson

from agentbus.channeltypes.wecom import WeComChannel
from agentbus.events import Attachment, ReplyGeneratedData
from agentbus.services.egress.channels.base import (
    OutboundAdapter,
    TokenCache,
    classify_http,
    transport_failure,
)
from agentbus.services.egress.channels.dingtalk import split_utf8
from agentbus.services.egress.channels.parts_text import text_with_parts
from agentbus.services.egress.ports import Permanent, Pushed, Retryable

TOKEN_ERRCODES = {42001, 40014, 41001}
RETRY_ERRCODES = {-1: 1.0, 45009: 60.0, 45033: 1.0, 45011: 60.0}
APP_MAX_BYTES = 2048
ROBOT_MAX_BYTES = {"text": 2048, "markdown": 4096}
NEWS_MAX_ARTICLES = 8  # a news message takes 1 to 8 articles
NEWS_TITLE_MAX_BYTES = 128


def _article(image: Attachment) -> dict[str, Any]:
    """An image as a news article: WeCom fetches ``picurl`` itself, and a tap opens ``url``."""
    title = split_utf8(image.name or "image", NEWS_TITLE_MAX_BYTES)[0]
    return {"title": title, "url": image.url, "picurl": image.url}


class WeComOutbound(OutboundAdapter):
    type = "wecom"
    default_rate_per_minute = 20  # group robots: 20 a minute; the app: 30 a minute per member
    channel: WeComChannel

    def __init__(self, channel: WeComChannel, http: httpx.AsyncClient, tokens: TokenCache) -> None:
        super().__init__(channel, http, tokens)
        self._secret = channel.secret.value() if channel.secret else None
        self._robots = {chat: key.value() for chat, key in channel.group_robots.items()}
        first: dict[str, str] = {}
        self._robot_names = {chat: first.setdefault(key, chat) for chat, key in self._robots.items()}
        self._api = channel.api_base_url.rstrip("/")
        self._progress: OrderedDict[uuid.UUID, int] = OrderedDict()
        # WeCom's duplicate check makes a repeated identical message a no-op; robot webhooks have none
        self.idempotent = channel.duplicate_check_interval_s is not None and not self._robots

    def target(self, reply: ReplyGeneratedData) -> str:
        if reply.chat.id in self._robots:
            return f"{self.channel.id}:robot:{self._robot_names[reply.chat.id]}"
        return f"{self.channel.id}:{reply.chat.id}"

    async def push(self, reply: ReplyGeneratedData, reply_id: uuid.UUID) -> Pushed:
        robot = self._robots.get(reply.chat.id)
        messages = self.messages(reply)
        pushed = Pushed()
        try:
            for i in range(self._progress.get(reply_id, 0), len(messages)):
                pushed = await (self._robot(robot, messages[i]) if robot else self._app(reply, messages[i]))
                self._progress[reply_id] = i + 1
                while len(self._progress) > 10000:
                    self._progress.popitem(last=False)
        except Permanent:
            self._progress.pop(reply_id, None)
            raise
        self._progress.pop(reply_id, None)
        return pushed

    def messages(self, reply: ReplyGeneratedData) -> list[dict[str, Any]]:
        """The content of each message this reply is sent as: the text in parts (the first mentioning the
        asker), then the images as ``news`` articles. A card's buttons are text lines saying what to answer:
        neither a group robot nor an app text can take a press back. Files are lines with their URL."""
        robot = reply.chat.id in self._robots
        asker = self.addressee(reply) if robot else None
        limit = ROBOT_MAX_BYTES[reply.format] if robot else APP_MAX_BYTES
        if asker is not None and reply.format == "markdown":
            limit -= len(asker.id.encode()) + 4  # "<@userid> " before the first part
        images = [a for a in reply.attachments if a.kind == "image" and a.url]
        text = reply.text
        if reply.card is not None or reply.attachments:
            shown = reply.model_copy(update={"attachments": tuple(a for a in reply.attachments if a not in images)})
            text = text_with_parts(shown)
        parts = split_utf8(text, limit) if text or not images else []
        out = [self._content(reply, part, asker.id if asker is not None and i == 0 else None)
               for i, part in enumerate(parts)]
        for n in range(0, len(images), NEWS_MAX_ARTICLES):
            articles = [_article(a) for a in images[n:n + NEWS_MAX_ARTICLES]]
            out.append({"msgtype": "news", "news": {"articles": articles}})
        return out

    @staticmethod
    def _content(reply: ReplyGeneratedData, text: str, mention: str | None = None) -> dict[str, Any]:
        if reply.format == "markdown":
            return {"msgtype": "markdown", "markdown": {"content": f"<@{mention}> {text}" if mention else text}}
        content: dict[str, Any] = {"content": text}
        if mention:
            content["mentioned_list"] = [mention]
        return {"msgtype": "text", "text": content}

    async def _post(
        self, url: str, params: dict[str, str], body: dict[str, Any]
    ) -> tuple[httpx.Response, dict[str, Any]]:
        try:
            resp = await self.http.post(
                url, params=params, content=orjson.dumps(body), headers={"content-type": "application/json"}
            )
        except httpx.TransportError as exc:
            raise transport_failure(exc) from exc
        classify_http(resp)
        try:
            data = resp.json()
            int(data.get("errcode", 0))
        except (ValueError, TypeError, AttributeError):
            raise Retryable("unreadable answer", resp.status_code, ambiguous=True) from None
        return resp, data

    @staticmethod
    def _raise_for(data: dict[str, Any], resp: httpx.Response, what: str) -> None:
        code = int(data.get("errcode", 0))
        if code == 0:
            return
        msg = str(data.get("errmsg", ""))[:200]
        if code in RETRY_ERRCODES:
            raise Retryable(f"{what}: errcode {code}: {msg}", resp.status_code, RETRY_ERRCODES[code])
        raise Permanent(f"{what}: errcode {code}: {msg}", resp.status_code)

    # ------------------------------------------------------------------ group robot

    async def _robot(self, key: str, content: dict[str, Any]) -> Pushed:
        resp, data = await self._post(f"{self._api}/cgi-bin/webhook/send", {"key": key}, content)
        self._raise_for(data, resp, "group robot")
        return Pushed(http_status=resp.status_code)

    # ------------------------------------------------------------------ app messages

    @property
    def _token_key(self) -> str:
        return f"wecom:{self.channel.corp_id}:{self.channel.agent_id}"

    async def _token(self) -> str:
        async def fetch() -> tuple[str, float]:
            try:
                resp = await self.http.get(
                    f"{self._api}/cgi-bin/gettoken",
                    params={"corpid": self.channel.corp_id, "corpsecret": self._secret},
                )
            except httpx.TransportError as exc:
                raise Retryable(f"gettoken: {type(exc).__name__}: {exc}") from exc
            classify_http(resp)
            try:
                data = resp.json()
            except ValueError:
                raise Retryable("gettoken: unreadable answer", resp.status_code) from None
            self._raise_for(data, resp, "gettoken")
            token, ttl = data.get("access_token"), data.get("expires_in")
            if not isinstance(token, str) or not token:
                raise Retryable("gettoken: no access_token in the answer", resp.status_code)
            return token, float(ttl) if isinstance(ttl, (int, float)) else 7200.0

        return await self.tokens.get(self._token_key, fetch)

    async def _app(self, reply: ReplyGeneratedData, content: dict[str, Any]) -> Pushed:
        if self._secret is None:
            raise Permanent(f"chat {reply.chat.id!r} has no group robot and the channel has no app secret")
        if reply.chat.type == "group":
            raise Permanent(f"group chat {reply.chat.id!r} has no group robot configured")
        route = reply.reply_route
        user = route.get("touser") or reply.chat.id
        body: dict[str, Any] = {
            "touser": user,
            "agentid": self.channel.agent_id,
            **content,
            "safe": 0,
        }
        if self.channel.duplicate_check_interval_s is not None:
            body.update(
                enable_duplicate_check=1, duplicate_check_interval=self.channel.duplicate_check_interval_s
            )
        for refreshed in (False, True):
            token = await self._token()
            resp, data = await self._post(f"{self._api}/cgi-bin/message/send", {"access_token": token}, body)
            if int(data.get("errcode", 0)) in TOKEN_ERRCODES:
                self.tokens.invalidate(self._token_key)
                if not refreshed:
                    continue
                raise Retryable(
                    f"access token refused right after a refresh: errcode {data['errcode']}", resp.status_code
                )
            self._raise_for(data, resp, "message/send")
            if user in str(data.get("invaliduser") or "").split("|"):
                raise Permanent(f"invalid user {user!r}", resp.status_code)
            msgid = data.get("msgid")
            return Pushed(
                http_status=resp.status_code, platform_message_id=msgid if isinstance(msgid, str) else None
            )
        raise AssertionError("unreachable")
