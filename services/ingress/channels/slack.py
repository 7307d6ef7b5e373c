"""Slack Events API: signed requests (``X-Slack-Signature`` v0), the URL check, message and app_mention events.

The signature is ``v0=`` + hex HMAC-SHA256(signing secret, ``v0:<timestamp>:<raw body>``); requests more
than five minutes old are refused. Slack retries an event (``X-Slack-Retry-Num``) until it gets a 2xx, and
delivers a mention of the bot twice when both ``app_mention`` and ``message.*`` are subscribed (two
``event_id``\\ s, one message): both collapse on the message's ``channel:ts``, which is the de-duplication key.

``normalise`` takes the ``event_callback`` JSON itself, so Socket Mode (the same JSON inside an envelope, no
signature) yields the very same message and key. An edit (subtype ``message_changed``) is dropped unless the
channel says ``edits: answer``; then the new text is a message of its own, keyed by the original message and
the edit's ``ts``, so each edit is answered once and the original's answer is not repeated. Interactivity
(button presses, ``slack_press``) comes to the same URL as a signed form post, told apart by its content type.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

import orjson

from agentbus.channeltypes.slack import SlackChannel
from agentbus.events import Chat, Sender
from agentbus.services.ingress.channels import slack_press
from agentbus.services.ingress.channels.base import HttpRequest, InboundAdapter, Rejected
from agentbus.services.ingress.inbound import Answer, Inbound, InboundMessage, MediaItem

MENTION = re.compile(r"<@([UW][A-Z0-9]{1,40})(?:\|([^>]*))?>")
SERVED_SUBTYPES = {None, "thread_broadcast", "file_share"}
_ID = re.compile(r"^[A-Z0-9]{1,40}$")
_TS = re.compile(r"^\d{1,12}\.\d{1,8}$")


def signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def _link(m: re.Match[str]) -> str:
    target, _, label = m.group(1).partition("|")
    if target.startswith("#"):  # <#C123|general>
        return f"#{label or target[1:]}"
    if target.startswith("!"):  # <!here>, <!subteam^S1|@team>, <!date^...|fallback>
        return label or f"@{target[1:].split('^')[0]}"
    return target if not label or label == target else f"{label} ({target})"


def _plain(text: str) -> str:
    """Slack's message formatting to plain text: links and special mentions spelled out, entities decoded."""
    text = re.sub(r"<([^<>\s][^<>]*)>", _link, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _str(d: Any, key: str) -> str | None:
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, str) and v else None


def files_of(event: dict[str, Any]) -> tuple[MediaItem, ...]:
    """The files shared with a message (``files[]``), fetched later from ``url_private_download``; files Slack
    withholds (``mode`` tombstone or hidden_by_limit) have no URL and are skipped."""
    out = []
    files = event.get("files")
    for f in files if isinstance(files, list) else []:
        if not isinstance(f, dict) or f.get("mode") in ("tombstone", "hidden_by_limit"):
            continue
        url = _str(f, "url_private_download") or _str(f, "url_private")
        if url is None:
            continue
        mime = _str(f, "mimetype")
        family = (mime or "").split("/")[0]
        kind: Any = family if family in ("image", "audio", "video") else "file"
        size = f.get("size")
        out.append(MediaItem(kind=kind, source={"url": url}, name=_str(f, "name"), content_type=mime,
                             size=size if isinstance(size, int) and size >= 0 else None))
    return tuple(out[:10])


class SlackInbound(InboundAdapter):
    type = "slack"
    channel: SlackChannel

    def __init__(self, channel: SlackChannel) -> None:
        super().__init__(channel)
        # absent in stream mode, where nothing arrives over HTTP: every request is then refused
        self._secret = channel.signing_secret.value() if channel.signing_secret is not None else None

    async def receive(self, request: HttpRequest) -> Inbound:
        self._verify(request)
        if request.headers.get("content-type", "").split(";")[0].strip() == "application/x-www-form-urlencoded":
            payload = slack_press.payload_of(request.body)  # interactivity: told apart by its content type
            if payload is None:
                return Inbound(answer=slack_press.ACK, note="not an Events API request (a slash command)")
            return self.interaction(payload)
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            raise Rejected(400, "malformed JSON body") from None
        if not isinstance(body, dict):
            raise Rejected(400, "body is not a JSON object")
        if body.get("type") == "url_verification":
            challenge = body.get("challenge")
            if not isinstance(challenge, str) or len(challenge) > 1024:
                raise Rejected(400, "url_verification without a challenge")
            return Inbound(answer=Answer(200, orjson.dumps({"challenge": challenge})), note="url_verification")
        return self.normalise(body)

    def interaction(self, payload: dict[str, Any]) -> Inbound:
        """An interactivity payload (form field ``payload``, or a Socket Mode ``interactive`` envelope)."""
        return slack_press.press(self.channel, payload)

    def normalise(self, body: dict[str, Any]) -> Inbound:
        """An Events API payload (webhook body or Socket Mode ``events_api`` payload) to at most one message;
        ``Rejected`` (4xx) when it is malformed."""
        kind = body.get("type")
        if kind != "event_callback":
            return Inbound(note=f"request type {str(kind)[:40]!r} ignored")
        event_id = _str(body, "event_id")
        event = body.get("event")
        if event_id is None or len(event_id) > 128 or not isinstance(event, dict):
            raise Rejected(400, "event_callback without event_id or event")
        etype = event.get("type")
        if etype not in ("message", "app_mention"):
            return Inbound(dedupe_id=event_id, note=f"event type {str(etype)[:40]!r} ignored")
        if event.get("subtype") == "message_changed":
            return self._edit(body, event_id, event)
        return self._message(body, event_id, event)

    def _verify(self, request: HttpRequest) -> None:
        if self._secret is None:
            raise Rejected(401, "this channel has no signing_secret (stream mode): webhook requests are refused")
        h = request.headers
        ts, sig = h.get("x-slack-request-timestamp"), h.get("x-slack-signature")
        if not ts or not sig:
            raise Rejected(401, "missing X-Slack-Request-Timestamp or X-Slack-Signature")
        if not ts.isdigit() or len(ts) > 12:
            raise Rejected(401, "malformed X-Slack-Request-Timestamp")
        if abs(request.received_at - int(ts)) > self.channel.max_clock_skew_s:
            raise Rejected(401, f"stale timestamp: more than {self.channel.max_clock_skew_s}s from now")
        expected = signature(self._secret, ts, request.body)
        if not hmac.compare_digest(expected.encode(), sig.strip().encode("utf-8", "replace")):
            raise Rejected(401, "invalid X-Slack-Signature")

    def _bot_user(self, body: dict[str, Any]) -> str | None:
        if self.channel.bot_user_id:
            return self.channel.bot_user_id
        auths = body.get("authorizations")
        for auth in auths if isinstance(auths, list) else []:
            if isinstance(auth, dict) and auth.get("is_bot") is True and _str(auth, "user_id"):
                return str(auth["user_id"])
        return None

    def _edit(self, body: dict[str, Any], event_id: str, event: dict[str, Any]) -> Inbound:
        """An edited message: ignored, or its new text as a new message (``edits: answer``)."""
        if self.channel.edits == "ignore":
            return Inbound(dedupe_id=event_id, note="message subtype 'message_changed' ignored (edits: ignore)")
        inner, previous = event.get("message"), event.get("previous_message")
        if not isinstance(inner, dict):
            raise Rejected(400, "message_changed without a message")
        edited_ts = _str(inner.get("edited"), "ts")
        if edited_ts is None or not _TS.match(edited_ts):
            # Slack also sends message_changed when it adds a link preview: the text is what was answered
            return Inbound(dedupe_id=event_id, note="message_changed without an edit (unfurl) ignored")
        if isinstance(previous, dict) and previous.get("text") == inner.get("text"):
            return Inbound(dedupe_id=event_id, note="message_changed with unchanged text ignored")
        merged = {**inner, "type": "message", "channel": event.get("channel"),
                  "channel_type": event.get("channel_type")}
        return self._message(body, event_id, merged, suffix=f":edited:{edited_ts}")

    def _message(self, body: dict[str, Any], event_id: str, event: dict[str, Any], suffix: str = "") -> Inbound:
        subtype = event.get("subtype")
        if subtype is not None and (not isinstance(subtype, str) or subtype not in SERVED_SUBTYPES):
            return Inbound(dedupe_id=event_id, note=f"message subtype {str(subtype)[:40]!r} ignored")
        channel, ts, user = _str(event, "channel"), _str(event, "ts"), _str(event, "user")
        if not channel or not _ID.match(channel) or not ts or not _TS.match(ts):
            raise Rejected(400, "message event without a valid channel or ts")
        bot = self._bot_user(body)
        if event.get("bot_id") is not None or not user:
            if user and user == bot:
                pass  # our own message: normalised below and marked from_self
            else:
                return Inbound(dedupe_id=event_id, note="message from a bot")
        text = event.get("text")
        files = files_of(event)
        if not isinstance(text, str):
            if not files:
                return Inbound(dedupe_id=event_id, note="message without text")
            text = ""
        mentions = tuple(dict.fromkeys(m.group(1) for m in MENTION.finditer(text)))

        def mention(m: re.Match[str]) -> str:
            return "" if m.group(1) == bot else f"@{m.group(2) or m.group(1)}"

        clean = _plain(MENTION.sub(mention, text)).strip()
        if not clean and not files:
            return Inbound(dedupe_id=event_id, note="empty message")
        ctype = event.get("channel_type")
        direct = ctype == "im" or (ctype is None and channel.startswith("D"))
        thread_ts = _str(event, "thread_ts")
        route: dict[str, Any] = {"channel": channel, "ts": ts}
        if _str(body, "team_id"):
            route["team"] = body["team_id"]
        if thread_ts and _TS.match(thread_ts):
            route["thread_ts"] = thread_ts
        elif self.channel.reply_in_thread and not direct:
            route["thread_ts"] = ts
        return Inbound(
            dedupe_id=f"{channel}:{ts}{suffix}",
            message=InboundMessage(
                platform_message_id=f"{channel}:{ts}{suffix}",
                sender=Sender(id=user or "", is_bot=event.get("bot_id") is not None),
                chat=Chat(id=channel, type="direct" if direct else "group"),
                text=clean,
                mentions=mentions,
                mentioned_bot=direct or event.get("type") == "app_mention" or (bot is not None and bot in mentions),
                reply_route=route,
                from_self=bool(user) and user == bot,
                attachments=files,
            ),
        )
