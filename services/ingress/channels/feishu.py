"""Feishu / Lark event subscription (schema 2.0): signature, decryption, the URL check, message events.

With an Encrypt Key configured every event is encrypted and signed (``X-Lark-Signature`` over the raw body,
checked before anything is decrypted); the URL check is answered after its verification token matches.
Without one, the verification token inside the event is the only proof of origin. Only
``im.message.receive_v1`` and a press of a button on the bot's card (the ``card.action.trigger`` callback,
with the same security: ``feishu_press.py``) become messages; other events are acknowledged and dropped.
``normalise`` is the part shared with the long connection (``longconn/feishu.py``), whose events are
neither encrypted nor signed: the connection itself was opened with the app's credentials.

How old a signed request may be. Feishu's event guide ("接收事件 / 推送周期和频次", event subscription docs
on open.feishu.cn, quoted at e-com-net.com/article/1680928623508402176.htm) says an event not answered with
HTTP 200 within 3 s is pushed again after 15 s, 5 min, 1 h and 6 h (at most 4 retries), so duplicates
arrive for about 7.1 h and are told apart by ``header.event_id``. It documents no freshness window for
``X-Lark-Request-Timestamp`` and does not say that a retry is signed afresh, and the official SDKs never
look at the timestamp: lark-oapi (Python) ``EventDispatcherHandler._verify_sign`` and oapi-sdk-go
``EventDispatcher.VerifySign`` only recompute SHA-256(timestamp + nonce + Encrypt Key + body). An app built
on them accepts a retry whatever its stamp, so a retry may carry its first attempt's timestamp, and a
300 s window would refuse it. So a signed request may be ``max_event_age_s`` old (8 h by default: the
whole retry schedule), and at most ``max_clock_skew_s`` in the future. The signature is still required,
and a replay inside the window is the same ``event_id``, which ingress publishes once (its
de-duplication rows do not expire, and message ids are derived from the event id).
"""

from __future__ import annotations

import hmac
import re
from typing import Any

import orjson

from agentbus.channeltypes.feishu import FeishuChannel
from agentbus.events import Chat, Sender
from agentbus.services.ingress.channels.base import HttpRequest, InboundAdapter, Rejected
from agentbus.services.ingress.channels.feishu_crypto import DecryptError, decrypt, signature_ok
from agentbus.services.ingress.channels.feishu_press import CARD_ACTION, press
from agentbus.services.ingress.inbound import Answer, Inbound, InboundMessage, MediaItem

MESSAGE_EVENT = "im.message.receive_v1"
OK = Answer(200, b'{"msg":"success"}')
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def _obj(raw: bytes, what: str) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Rejected(400, f"malformed JSON {what}") from None
    if not isinstance(data, dict):
        raise Rejected(400, f"{what} is not a JSON object")
    return data


def _str(d: Any, key: str) -> str | None:
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, str) and v else None


def _flatten_post(content: dict[str, Any]) -> str:
    """Rich text (post) to plain text: one line per paragraph; @ elements keep their mention key."""
    body = content
    if "content" not in body:  # some clients wrap it in a locale: {"zh_cn": {...}}
        body = next((v for v in body.values() if isinstance(v, dict) and "content" in v), {})
    lines = [body["title"]] if isinstance(body.get("title"), str) and body["title"] else []
    paragraphs = body.get("content")
    for para in paragraphs if isinstance(paragraphs, list) else []:
        if not isinstance(para, list):
            continue
        parts = []
        for el in para:
            if not isinstance(el, dict):
                continue
            tag = el.get("tag")
            if tag in ("text", "a", "md", "code_block") and isinstance(el.get("text"), str):
                parts.append(el["text"])
            elif tag == "at":
                parts.append(str(el.get("user_id") or el.get("user_name") or ""))
        lines.append("".join(parts))
    return "\n".join(lines)


def media_of(msg: dict[str, Any], message_id: str) -> tuple[MediaItem, ...]:
    """Images, files, voice and video of a message (``image_key`` / ``file_key`` in its content, and the
    images of a rich-text post), fetched later as resources of the message. Feishu gives voice no text."""
    kind = _str(msg, "message_type")
    raw = msg.get("content")
    if kind not in ("image", "file", "audio", "media", "post") or not isinstance(raw, str):
        return ()
    try:
        content = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ()
    if not isinstance(content, dict):
        return ()

    def item(k: Any, key: str | None, name: str | None = None, ctype: str | None = None) -> MediaItem | None:
        return MediaItem(kind=k, source={"message_id": message_id, "file_key": key}, name=name,
                         content_type=ctype) if key else None

    found: list[MediaItem | None] = []
    if kind == "image":
        found.append(item("image", _str(content, "image_key")))
    elif kind == "file":
        found.append(item("file", _str(content, "file_key"), _str(content, "file_name")))
    elif kind == "audio":
        found.append(item("audio", _str(content, "file_key"), None, "audio/opus"))
    elif kind == "media":
        found.append(item("video", _str(content, "file_key"), _str(content, "file_name"), "video/mp4"))
    else:
        body = content if "content" in content else next(
            (v for v in content.values() if isinstance(v, dict) and "content" in v), {})
        paragraphs = body.get("content")
        for para in paragraphs if isinstance(paragraphs, list) else []:
            for el in para if isinstance(para, list) else []:
                if isinstance(el, dict) and el.get("tag") == "img":
                    found.append(item("image", _str(el, "image_key")))
    return tuple(f for f in found if f is not None)[:10]


class FeishuInbound(InboundAdapter):
    type = "feishu"
    channel: FeishuChannel

    def __init__(self, channel: FeishuChannel) -> None:
        super().__init__(channel)
        self._token = channel.verification_token.value() if channel.verification_token else None
        self._key = channel.encrypt_key.value() if channel.encrypt_key else None

    async def receive(self, request: HttpRequest) -> Inbound:
        if self._token is None and self._key is None:
            raise Rejected(403, "this channel has no event subscription (set verification_token or encrypt_key)")
        outer = _obj(request.body, "body")
        signed = self._check_signature(request)
        if "encrypt" in outer:
            if self._key is None:
                raise Rejected(400, "encrypted event, but the channel has no encrypt_key")
            if not isinstance(outer["encrypt"], str):
                raise Rejected(400, "encrypt is not a string")
            try:
                plain = decrypt(self._key, outer["encrypt"])
            except DecryptError as err:
                raise Rejected(400, f"cannot decrypt event: {err}") from None
            event = _obj(plain, "decrypted event")
        else:
            event = outer
        is_v2 = event.get("schema") == "2.0"
        header = event.get("header") if is_v2 else None
        if is_v2 and not isinstance(header, dict):
            raise Rejected(400, "event without a header")
        token = _str(header, "token") if is_v2 else _str(event, "token")
        self._check_token(token)
        kind = _str(header, "event_type") if is_v2 else _str(event, "type")
        if kind == "url_verification" or event.get("type") == "url_verification":
            challenge = event.get("challenge")
            if not isinstance(challenge, str) or len(challenge) > 1024:
                raise Rejected(400, "url_verification without a challenge")
            return Inbound(answer=Answer(200, orjson.dumps({"challenge": challenge})), note="url_verification")
        if self._key is not None and not signed:
            raise Rejected(401, "missing X-Lark-Signature, X-Lark-Request-Timestamp or X-Lark-Request-Nonce")
        return self.normalise(event)

    def normalise(self, event: dict[str, Any]) -> Inbound:
        """One decrypted, authenticated event (a webhook's, or one from the long connection) as at most one
        message, its dedupe id ``header.event_id``; ``Rejected`` when malformed."""
        if event.get("schema") != "2.0":
            return Inbound(answer=OK, note="schema 1.0 events are not handled; subscribe with schema 2.0")
        header = event.get("header")
        if not isinstance(header, dict):
            raise Rejected(400, "event without a header")
        kind = _str(header, "event_type")
        event_id = _str(header, "event_id")
        if event_id is None or len(event_id) > 128:
            raise Rejected(400, "event without header.event_id")
        if kind == CARD_ACTION:
            raw = event.get("event")
            if not isinstance(raw, dict):
                raise Rejected(400, "card callback without an event object")
            return press(event_id, raw)
        if kind != MESSAGE_EVENT:
            return Inbound(answer=OK, dedupe_id=event_id, note=f"event type {str(kind)[:64]!r} ignored")
        body = event.get("event")
        if not isinstance(body, dict):
            raise Rejected(400, "message event without an event object")
        return self._message(event_id, body)

    def _check_signature(self, request: HttpRequest) -> bool:
        """True when the request carries a valid signature; 401 when it carries a bad or stale one."""
        h = request.headers
        ts, nonce, sig = h.get("x-lark-request-timestamp"), h.get("x-lark-request-nonce"), h.get("x-lark-signature")
        if self._key is None or not (ts and nonce and sig):
            return False
        if not signature_ok(ts, nonce, self._key, request.body, sig):
            raise Rejected(401, "invalid X-Lark-Signature")
        if not ts.isdigit() or len(ts) > 12:
            raise Rejected(401, "malformed X-Lark-Request-Timestamp")
        # a retry keeps the signature (and timestamp) of its first attempt, up to hours old: see the docstring
        age, skew = request.received_at - int(ts), self.channel.max_clock_skew_s
        if skew and -age > skew:
            raise Rejected(401, f"timestamp more than {skew}s in the future")
        max_age = self.channel.max_event_age_s
        if max_age and age > max_age:
            raise Rejected(401, f"stale timestamp: more than {max_age}s old")
        return True

    def _check_token(self, token: str | None) -> None:
        if self._token is None:
            return
        if token is None or not hmac.compare_digest(token.encode(), self._token.encode()):
            raise Rejected(401, "invalid verification token")

    def _message(self, event_id: str, body: dict[str, Any]) -> Inbound:
        raw_sender = body.get("sender")
        sender: dict[str, Any] = raw_sender if isinstance(raw_sender, dict) else {}
        msg = body.get("message")
        if not isinstance(msg, dict):
            raise Rejected(400, "message event without event.message")
        raw_ids = sender.get("sender_id")
        sender_ids: dict[str, Any] = raw_ids if isinstance(raw_ids, dict) else {}
        open_id = _str(sender_ids, "open_id") or _str(sender_ids, "union_id") or _str(sender_ids, "user_id")
        message_id, chat_id = _str(msg, "message_id"), _str(msg, "chat_id")
        if not open_id or not message_id or not chat_id or not _ID.match(chat_id) or not _ID.match(message_id):
            raise Rejected(400, "message event without sender open_id, message_id or chat_id")
        bot = self.channel.bot_open_id
        sender_type = _str(sender, "sender_type") or "user"
        if sender_type != "user" and (bot is None or open_id != bot):
            return Inbound(answer=OK, dedupe_id=event_id, note=f"message sent by a {sender_type[:16]}")
        text = self._text(msg)
        media = media_of(msg, message_id)
        if text is None and not media:
            return Inbound(answer=OK, dedupe_id=event_id, note=f"message type {_str(msg, 'message_type')!r} ignored")
        text = text or ""
        mentions: list[str] = []
        mentioned_bot = False
        raw_mentions = msg.get("mentions")
        for m in raw_mentions if isinstance(raw_mentions, list) else []:
            if not isinstance(m, dict) or not isinstance(m.get("key"), str):
                continue
            mid = m.get("id") if isinstance(m.get("id"), dict) else {}
            m_open = _str(mid, "open_id") or ""
            is_bot = m_open == bot if bot else m.get("mentioned_type") != "user"
            mentioned_bot = mentioned_bot or is_bot
            if m_open:
                mentions.append(m_open)
            if is_bot:  # the mention that addressed the bot is not part of what was said
                text = re.sub(re.escape(m["key"]) + r"[ \t\u00a0]?", "", text)
            else:
                text = text.replace(m["key"], f"@{m.get('name') or m_open}")
        text = text.strip()
        if not text and not media:
            return Inbound(answer=OK, dedupe_id=event_id, note="empty message")
        chat_type = "direct" if _str(msg, "chat_type") == "p2p" else "group"
        route = {"chat_id": chat_id, "message_id": message_id}
        for k in ("thread_id", "root_id"):
            if _str(msg, k):
                route[k] = msg[k]
        return Inbound(
            answer=OK,
            dedupe_id=event_id,
            message=InboundMessage(
                platform_message_id=message_id,
                sender=Sender(id=open_id, is_bot=sender_type != "user"),
                chat=Chat(id=chat_id, type=chat_type),
                text=text,
                mentions=tuple(mentions),
                mentioned_bot=mentioned_bot or chat_type == "direct",
                reply_route=route,
                from_self=bool(bot) and open_id == bot,
                attachments=media,
            ),
        )

    @staticmethod
    def _text(msg: dict[str, Any]) -> str | None:
        kind = _str(msg, "message_type")
        raw = msg.get("content")
        if kind not in ("text", "post") or not isinstance(raw, str):
            return None
        try:
            content = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise Rejected(400, "message content is not JSON") from None
        if not isinstance(content, dict):
            raise Rejected(400, "message content is not a JSON object")
        if kind == "text":
            return content["text"] if isinstance(content.get("text"), str) else None
        return _flatten_post(content)
