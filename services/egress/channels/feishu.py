"""Feishu / Lark push: the IM API with a tenant_access_token, or a custom group bot webhook.

IM API: ``POST /open-apis/im/v1/messages/{message_id}/reply`` (answering the message) or
``POST /open-apis/im/v1/messages?receive_id_type=chat_id``, both with ``uuid`` = the reply id, which Feishu
de-duplicates for an hour; so a push that may have arrived can be repeated safely. A token the platform
rejects (expired, revoked) is refreshed and the call made once more. Feishu answers errors as
``{"code": N, "msg": ...}``; rate limits as HTTP 429 (or 400) with code 99991400 and ``x-ogw-ratelimit-reset``.

Custom bot webhook: ``POST /open-apis/bot/v2/hook/<token>`` with ``timestamp`` and
``sign`` = base64(HMAC-SHA256(key = timestamp + "\\n" + secret, message = empty)). It has no idempotency key.

A reply with a card or attachments goes out as a card JSON 2.0 (or the text) and one message per image
(``feishu_parts.py``); which of these messages went out is remembered, so a retry sends only the rest.

While the agent works: a reaction on the person's message, or the answer streamed into a card edited as it
grows (``feishu_progress.py``).

A group reply mentions the asker (their open_id) in front of the text: ``<at user_id="ou_...">`` in text and
post (md) content, ``<at id=ou_...>`` in a card's markdown, as each message type documents it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
import uuid
from collections import OrderedDict
from typing import Any

import httpx
import orjson
import structlog

from agentbus.channeltypes.feishu import FeishuChannel
from agentbus.events import Attachment, ReplyGeneratedData, ReplyProgressData
from agentbus.services.egress.channels.base import (
    OutboundAdapter,
    TokenCache,
    transport_failure,
)
from agentbus.services.egress.channels.feishu_answers import ReplyTargetGone, code_of, failure_of, json_of
from agentbus.services.egress.channels.feishu_parts import (
    SHARED,
    ImageFailed,
    Plan,
    card_json,
    card_markdown,
    fetch_image,
    parts_as_text,
    upload_image,
)
from agentbus.services.egress.channels.feishu_progress import FeishuProgress
from agentbus.services.egress.channels.parts_text import text_with_parts
from agentbus.services.egress.ports import Permanent, Pushed, Retryable

TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
# the access token is missing, invalid or expired: fetch a new one and try once more
TOKEN_CODES = {99991661, 99991663, 99991664, 99991665, 99991668}
REPLY_TARGET_GONE = {230011}  # the message to reply to was recalled: send to the chat instead
SEND_RATE_PER_MINUTE = 300  # "5 QPS per user / per group (shared by the group's bots)"
HOOK_RATE_PER_MINUTE = 100  # custom bot: 100 per minute, 5 per second
log = structlog.get_logger("agentbus.egress")
USER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # open_id / user_id: nothing that could break out of the tag


def hook_sign(timestamp: int, secret: str) -> str:
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


class FeishuOutbound(FeishuProgress, OutboundAdapter):
    type = "feishu"
    idempotent = True
    default_rate_per_minute = SEND_RATE_PER_MINUTE
    channel: FeishuChannel
    fetch_schemes: tuple[str, ...] = ("https",)  # where images are downloaded from (outbound URLs are https)
    fetch_public_only = True  # and only from hosts whose addresses are all public

    def __init__(self, channel: FeishuChannel, http: httpx.AsyncClient, tokens: TokenCache) -> None:
        super().__init__(channel, http, tokens)
        self._plans: OrderedDict[uuid.UUID, Plan] = OrderedDict()
        self._app = (
            (channel.app_id.value(), channel.app_secret.value()) if channel.app_id and channel.app_secret else None
        )
        hook = channel.bot_webhook
        self._hook = (hook.token.value(), hook.secret.value() if hook.secret else None) if hook else None
        self._token_key = f"feishu:{channel.base}:{self._app[0]}" if self._app else ""

    def _via_hook(self, reply: ReplyGeneratedData) -> bool:
        return self._app is None or (self._hook is not None and reply.reply_route.get("via") == "bot_webhook")

    def target(self, reply: ReplyGeneratedData) -> str:
        if self._via_hook(reply):
            return f"{self.channel.id}:bot_webhook"
        return super().target(reply)

    def rate_for(self, reply: ReplyGeneratedData) -> int | None:
        if self.channel.rate_limit_per_minute:
            return self.channel.rate_limit_per_minute
        return HOOK_RATE_PER_MINUTE if self._via_hook(reply) else SEND_RATE_PER_MINUTE

    def is_idempotent(self, reply: ReplyGeneratedData) -> bool:
        return not self._via_hook(reply)  # the custom bot webhook has no idempotency key

    async def push(self, reply: ReplyGeneratedData, reply_id: uuid.UUID) -> Pushed:
        if self._via_hook(reply):
            return await self._push_hook(parts_as_text(reply))
        if reply.card is not None or reply.attachments:
            return await self._push_parts(reply, reply_id)
        msg_type, content = self._content(reply)
        return await self._send(reply, msg_type, content, str(reply_id))

    async def _send(self, reply: ReplyGeneratedData | ReplyProgressData, msg_type: str, content: str,
                    uid: str) -> Pushed:
        """One message, answering the message asked about (reply mode) or sent to the chat."""
        route = reply.reply_route
        message_id = route.get("message_id") if self.channel.reply_mode == "reply" else None
        if isinstance(message_id, str) and message_id:
            body: dict[str, Any] = {"msg_type": msg_type, "content": content, "uuid": uid}
            if self.channel.reply_in_thread or route.get("thread_id"):
                body["reply_in_thread"] = True
            try:
                return await self._call(f"/open-apis/im/v1/messages/{message_id}/reply", None, body)
            except ReplyTargetGone:
                pass
        chat_id = route.get("chat_id") or reply.chat.id
        body = {"receive_id": chat_id, "msg_type": msg_type, "content": content, "uuid": uid}
        return await self._call("/open-apis/im/v1/messages", {"receive_id_type": "chat_id"}, body)

    async def _push_parts(self, reply: ReplyGeneratedData, reply_id: uuid.UUID) -> Pushed:
        """The card (or text) message, then one message per uploaded image. The messages are planned once
        (the images uploaded then), and which went out is remembered, so a retry sends only the rest; each
        has its own ``uuid`` besides, which Feishu de-duplicates."""
        last: Exception | None = None
        plan = self._plans.get(reply_id)
        if plan is None:
            plan = self._plans[reply_id] = Plan(await self._messages(reply, reply_id))
            while len(self._plans) > 10_000:
                self._plans.popitem(last=False)
        for i in range(plan.done, len(plan.messages)):
            msg_type, content, uid = plan.messages[i]
            try:
                pushed = await self._send(reply, msg_type, content, uid)
                plan.first = plan.first or pushed
            except Permanent as exc:
                if i == 0 and plan.has_main:
                    raise
                log.warning("feishu_image_refused", channel=self.channel.id, reason=str(exc)[:200])
                last = exc
            plan.done = i + 1
        self._plans.pop(reply_id, None)
        if plan.first is None:  # only images, and every one refused: the reply did not arrive
            raise Permanent(f"no message of the reply was accepted: {last}")
        return plan.first

    async def _messages(self, reply: ReplyGeneratedData, reply_id: uuid.UUID,
                        shared: bool = False) -> list[tuple[str, str, str]]:
        """The reply's messages; ``shared``: the first is always a card (JSON 2.0, ``update_multi``), the
        form a streamed card is edited into."""
        keys: dict[int, str] = {}
        for i, a in enumerate(reply.attachments):
            if a.kind == "image" and a.url:
                try:
                    keys[i] = await self._image_key(a)
                except ImageFailed as exc:
                    log.warning("feishu_image_as_link", channel=self.channel.id, reason=str(exc)[:200])
        rest = tuple(a for i, a in enumerate(reply.attachments) if i not in keys)
        out: list[tuple[str, str, str]] = []
        if reply.card is not None:
            md = text_with_parts(reply.model_copy(update={
                "text": card_markdown(reply.text, reply.card), "card": None, "attachments": rest}))
            md = self._text(reply.model_copy(update={"text": md}), card=True)
            thread = reply.reply_route.get("thread_id")
            card = card_json(reply.card, md, reply.chat.type, thread if isinstance(thread, str) else None)
            out.append(("interactive", orjson.dumps(card | SHARED if shared else card).decode(), str(reply_id)))
        elif shared:
            md = self._text(reply.model_copy(update={"text": text_with_parts(reply.model_copy(
                update={"attachments": rest}))}), card=True)
            card = {**SHARED, "schema": "2.0", "body": {"elements": [{"tag": "markdown", "content": md}]}}
            out.append(("interactive", orjson.dumps(card).decode(), str(reply_id)))
        else:
            text = text_with_parts(reply.model_copy(update={"attachments": rest}))
            if text:
                out.append((*self._content(reply.model_copy(update={"text": text, "attachments": ()})), str(reply_id)))
        for i in sorted(keys):
            image = orjson.dumps({"image_key": keys[i]}).decode()
            out.append(("image", image, str(uuid.uuid5(reply_id, f"image:{i}"))))
        if not out:
            raise Permanent("the reply has no text and no part that can be sent")
        return out

    async def _image_key(self, a: Attachment) -> str:
        data, ctype = await fetch_image(self.http, a, self.fetch_schemes, self.fetch_public_only)
        name = a.name or "image"
        for attempt in (1, 2):
            token = await self.tokens.get(self._token_key, self._fetch_token)
            key, code = await upload_image(self.http, self.channel.base, token, name, data, ctype)
            if key is not None:
                return key
            if code in TOKEN_CODES and attempt == 1:
                self.tokens.invalidate(self._token_key)
                continue
            raise ImageFailed(f"upload refused: code {code}")
        raise AssertionError("unreachable")

    def _text(self, reply: ReplyGeneratedData, card: bool = False) -> str:
        """The reply's text, with the asker's mention in front in a group (a card spells it differently)."""
        asker = self.addressee(reply)
        if asker is None or not USER_ID.fullmatch(asker.id):
            return reply.text
        return f"<at id={asker.id}></at> {reply.text}" if card else f'<at user_id="{asker.id}"></at> {reply.text}'

    def _content(self, reply: ReplyGeneratedData) -> tuple[str, str]:
        """(msg_type, content): content is a JSON string, as the IM API wants it."""
        if reply.format != "markdown":
            return "text", orjson.dumps({"text": self._text(reply)}).decode()
        if self.channel.markdown_as == "interactive":
            return "interactive", orjson.dumps(self._card(self._text(reply, card=True))).decode()
        return "post", orjson.dumps({"zh_cn": self._post(self._text(reply))}).decode()

    @staticmethod
    def _post(text: str) -> dict[str, Any]:
        return {"title": "", "content": [[{"tag": "md", "text": text}]]}

    @staticmethod
    def _card(text: str) -> dict[str, Any]:
        return {"config": {"wide_screen_mode": True}, "elements": [{"tag": "markdown", "content": text}]}

    async def _fetch_token(self) -> tuple[str, float]:
        assert self._app is not None
        app_id, app_secret = self._app
        try:
            resp = await self.http.post(
                self.channel.base + TOKEN_PATH, json={"app_id": app_id, "app_secret": app_secret}
            )
        except httpx.TransportError as exc:
            raise Retryable(f"tenant_access_token: {type(exc).__name__}: {exc}") from exc
        data = json_of(resp)
        if data is not None and data.get("code") == 0 and isinstance(data.get("tenant_access_token"), str):
            expire = data.get("expire")
            return data["tenant_access_token"], float(expire) if isinstance(expire, (int, float)) else 3600.0
        refused = failure_of(resp, data)
        refused.args = (f"tenant_access_token: {refused}",)
        raise refused

    async def _call(self, path: str, params: dict[str, str] | None, body: dict[str, Any] | None,
                    method: str = "POST", key: str = "message_id") -> Pushed:
        """One IM API call; the answer's ``data[key]`` is handed back as the platform message id."""
        for attempt in (1, 2):
            token = await self.tokens.get(self._token_key, self._fetch_token)
            headers = {"authorization": f"Bearer {token}"}
            if body is not None:
                headers["content-type"] = "application/json; charset=utf-8"
            try:
                resp = await self.http.request(
                    method, self.channel.base + path, params=params,
                    content=orjson.dumps(body) if body is not None else None, headers=headers,
                )
            except httpx.TransportError as exc:
                raise transport_failure(exc) from exc
            data = json_of(resp)
            code = code_of(data)
            if resp.status_code < 300 and code == 0:
                payload = (data or {}).get("data")
                msg_id = payload.get(key) if isinstance(payload, dict) else None
                return Pushed(http_status=resp.status_code, platform_message_id=msg_id)
            if code in TOKEN_CODES:
                self.tokens.invalidate(self._token_key)
                if attempt == 1:
                    continue
                raise Permanent(f"access token rejected after a refresh: code {code}", resp.status_code)
            if code in REPLY_TARGET_GONE:
                raise ReplyTargetGone(f"code {code}: the message to reply to is gone", resp.status_code)
            raise failure_of(resp, data)
        raise AssertionError("unreachable")

    async def _push_hook(self, reply: ReplyGeneratedData) -> Pushed:
        if self._hook is None:
            raise Permanent("channel has neither app credentials nor a bot_webhook")
        token, secret = self._hook
        if reply.format == "markdown":
            body: dict[str, Any] = (
                {"msg_type": "interactive", "card": self._card(self._text(reply, card=True))}
                if self.channel.markdown_as == "interactive"
                else {"msg_type": "post", "content": {"post": {"zh_cn": self._post(self._text(reply))}}}
            )
        else:
            body = {"msg_type": "text", "content": {"text": self._text(reply)}}
        if secret is not None:
            ts = int(time.time())
            body = {"timestamp": str(ts), "sign": hook_sign(ts, secret), **body}
        try:
            resp = await self.http.post(
                f"{self.channel.base}/open-apis/bot/v2/hook/{token}",
                content=orjson.dumps(body),
                headers={"content-type": "application/json; charset=utf-8"},
            )
        except httpx.TransportError as exc:
            raise transport_failure(exc) from exc
        data = json_of(resp)
        if resp.status_code < 300 and code_of(data) == 0:
            return Pushed(http_status=resp.status_code)
        raise failure_of(resp, data)
