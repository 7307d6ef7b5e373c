"""Telegram Bot API webhook: ``X-Telegram-Bot-Api-Secret-Token``, then ``message`` / ``edited_message`` updates,
and ``callback_query`` (a press of a card's button, ``telegram_press``).

Telegram resends an update until it gets a 2xx; ``update_id`` is the de-duplication key. In groups the bot
is addressed by an ``@username`` mention entity, a ``text_mention`` of the bot, a ``/command@username``, or
(configurable) a reply to one of its messages. Entity offsets count UTF-16 code units.
"""

from __future__ import annotations

import hmac
import re
from typing import Any

import orjson

from agentbus.channeltypes.telegram import TelegramChannel
from agentbus.events import Chat, Sender
from agentbus.services.ingress.channels.base import HttpRequest, InboundAdapter, Rejected
from agentbus.services.ingress.channels.telegram_press import press
from agentbus.services.ingress.inbound import Answer, Inbound, InboundMessage, MediaItem

OK = Answer(200, b'{"ok":true}')


def bot_id_of(token: str) -> int | None:
    head = token.split(":", 1)[0]
    return int(head) if head.isdigit() else None


def _int(d: Any, key: str) -> int | None:
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _entity_spans(text: str, entities: Any) -> list[tuple[int, int, dict[str, Any], str]]:
    """(start, end, entity, covered text) in UTF-16 code units; malformed entities are skipped."""
    units = text.encode("utf-16-le")
    total = len(units) // 2
    out = []
    for e in entities if isinstance(entities, list) else []:
        off, length = _int(e, "offset"), _int(e, "length")
        if off is None or length is None or off < 0 or length <= 0 or off + length > total:
            continue
        covered = units[off * 2:(off + length) * 2].decode("utf-16-le", errors="replace")
        out.append((off, off + length, e, covered))
    return out


def _cut(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` without the given UTF-16 spans."""
    units = text.encode("utf-16-le")
    for start, end in sorted(spans, reverse=True):
        units = units[:start * 2] + units[end * 2:]
    return units.decode("utf-16-le", errors="replace")


def _file(d: Any, kind: Any, content_type: str | None = None) -> MediaItem | None:
    if not isinstance(d, dict) or not isinstance(d.get("file_id"), str) or not d["file_id"]:
        return None
    mime = d.get("mime_type") if isinstance(d.get("mime_type"), str) else content_type
    name = d.get("file_name") if isinstance(d.get("file_name"), str) else None
    if kind == "file" and mime and mime.startswith("image/"):
        kind = "image"
    return MediaItem(kind=kind, source={"file_id": d["file_id"]}, name=name, content_type=mime,
                     size=_int(d, "file_size"))


def attachments_of(msg: dict[str, Any]) -> tuple[MediaItem, ...]:
    """A photo (its largest size), a document, a voice note, an audio file or a video of one message. Telegram
    gives no recognised text for voice notes: the model is told one came."""
    found: list[MediaItem | None] = []
    sizes = msg.get("photo")
    if isinstance(sizes, list) and sizes:
        best = max((p for p in sizes if isinstance(p, dict)),
                   key=lambda p: (_int(p, "width") or 0) * (_int(p, "height") or 0), default=None)
        found.append(_file(best, "image", "image/jpeg"))
    found.append(_file(msg.get("document"), "file"))
    found.append(_file(msg.get("voice"), "audio", "audio/ogg"))
    found.append(_file(msg.get("audio"), "audio"))
    found.append(_file(msg.get("video"), "video", "video/mp4"))
    return tuple(f for f in found if f is not None)


class TelegramInbound(InboundAdapter):
    type = "telegram"
    channel: TelegramChannel

    def __init__(self, channel: TelegramChannel) -> None:
        super().__init__(channel)
        self._secret = channel.secret_token.value().encode() if channel.secret_token is not None else None
        self._bot_id = bot_id_of(channel.bot_token.value())
        self._username = (channel.bot_username or "").lower()

    async def receive(self, request: HttpRequest) -> Inbound:
        given = request.headers.get("x-telegram-bot-api-secret-token")
        if (self._secret is None or given is None
                or not hmac.compare_digest(given.encode("utf-8", "replace"), self._secret)):
            raise Rejected(401, "missing or wrong X-Telegram-Bot-Api-Secret-Token")
        try:
            update = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            raise Rejected(400, "malformed JSON body") from None
        return self.normalise(update)

    def normalise(self, update: Any) -> Inbound:
        """One update (from a webhook or from getUpdates) as at most one message; ``Rejected`` when malformed."""
        if not isinstance(update, dict):
            raise Rejected(400, "body is not a JSON object")
        update_id = _int(update, "update_id")
        if update_id is None or update_id < 0:
            raise Rejected(400, "update without update_id")
        dedupe = str(update_id)
        if "callback_query" in update:
            return press(update["callback_query"], self._bot_id)
        kind = "message" if "message" in update else "edited_message" if "edited_message" in update else None
        if kind is None:
            other = next((k for k in update if k != "update_id"), "nothing")
            return Inbound(answer=OK, dedupe_id=dedupe, note=f"update type {str(other)[:40]!r} ignored")
        msg = update[kind]
        if not isinstance(msg, dict):
            raise Rejected(400, f"{kind} is not an object")
        if kind == "edited_message" and self.channel.edits == "ignore":
            return Inbound(answer=OK, dedupe_id=dedupe, note="edited message ignored (edits: ignore)")
        return self._message(dedupe, kind, msg)

    def _message(self, dedupe: str, kind: str, msg: dict[str, Any]) -> Inbound:
        chat, sender = msg.get("chat"), msg.get("from")
        chat_id, message_id = _int(chat, "id"), _int(msg, "message_id")
        if chat_id is None or message_id is None or not isinstance(chat, dict):
            raise Rejected(400, "message without chat.id or message_id")
        ctype = chat.get("type")
        if ctype not in ("private", "group", "supergroup"):
            return Inbound(answer=OK, dedupe_id=dedupe, note=f"chat type {str(ctype)[:20]!r} ignored")
        sender_id = _int(sender, "id")
        if sender_id is None or not isinstance(sender, dict):
            return Inbound(answer=OK, dedupe_id=dedupe, note="message without a sender")
        text = msg.get("text") if isinstance(msg.get("text"), str) else msg.get("caption")
        media = attachments_of(msg)
        if not isinstance(text, str) or not text.strip():
            if not media:
                return Inbound(answer=OK, dedupe_id=dedupe, note="message without text")
            text = ""
        entities = msg.get("entities") if "text" in msg else msg.get("caption_entities")
        addressed, cut, mentions = False, [], []
        for start, end, e, covered in _entity_spans(text, entities):
            etype = e.get("type")
            if etype == "mention":
                mentions.append(covered.lstrip("@"))
                if self._username and covered.lower() == f"@{self._username}":
                    addressed = True
                    cut.append((start, end))
            elif etype == "text_mention":
                uid = _int(e.get("user"), "id")
                if uid is not None:
                    mentions.append(str(uid))
                if uid is not None and uid == self._bot_id:
                    addressed = True
                    cut.append((start, end))
            elif etype == "bot_command" and "@" in covered:
                target = covered.split("@", 1)[1].lower()
                addressed = addressed or (bool(self._username) and target == self._username)
        reply_to = msg.get("reply_to_message")
        replied_to_bot = self._bot_id is not None and _int(reply_to.get("from") if isinstance(reply_to, dict) else None,
                                                            "id") == self._bot_id
        if replied_to_bot and self.channel.reply_to_bot_is_mention:
            addressed = True
        clean = re.sub(r"[ \t]{2,}", " ", _cut(text, cut)).strip()
        if not clean and not media:
            return Inbound(answer=OK, dedupe_id=dedupe, note="empty message")
        direct = ctype == "private"
        route: dict[str, Any] = {"chat_id": chat_id, "message_id": message_id}
        if msg.get("is_topic_message") is True and _int(msg, "message_thread_id") is not None:
            route["message_thread_id"] = msg["message_thread_id"]
        platform_id = f"{chat_id}:{message_id}"
        if kind == "edited_message":
            platform_id += f":edited:{_int(msg, 'edit_date') or dedupe}"
        name = sender.get("username") or " ".join(
            str(sender[k]) for k in ("first_name", "last_name") if isinstance(sender.get(k), str))
        title = chat.get("title") if isinstance(chat.get("title"), str) else None
        return Inbound(
            answer=OK,
            dedupe_id=dedupe,
            message=InboundMessage(
                platform_message_id=platform_id,
                sender=Sender(id=str(sender_id), name=str(name)[:256] or None, is_bot=sender.get("is_bot") is True),
                chat=Chat(id=str(chat_id), type="direct" if direct else "group", name=title),
                text=clean,
                mentions=tuple(dict.fromkeys(mentions)),
                mentioned_bot=direct or addressed,
                reply_route=route,
                from_self=self._bot_id is not None and sender_id == self._bot_id,
                attachments=media,
            ),
        )
