"""A local Slack Web API (``chat.postMessage``) and builders of signed Events API requests.

Block Kit ``blocks`` are checked with slack_sdk's models (``slack_interactive``), answered ``invalid_blocks``
as Slack does.

The fake checks the bot token, the channel (exists, bot is a member), the payload, and records which texts
carry unescaped control characters (``&``, ``<``, ``>`` outside Slack's markup; a mention is ``<@U...>``, and
each posted message records whom it mentions). ``plan`` makes the next
calls fail as Slack does: ``(429, None, {"Retry-After": "3"})`` or ``(200, "channel_not_found", {})``.
``unreadable`` posts the next messages but answers them with a 200 nobody can read (a proxy's error page in
place of Slack's JSON), as happens when something between the two cuts the answer off.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
from slack_sdk.signature import SignatureVerifier
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agentbus.http import LoopbackServer
from tests.fakes.slack_interactive import blocks_problems

BOT_USER = "U0BOTUSER1"
TEAM = "T0TEAM0001"
_MARKUP = re.compile(r"<(?:https?://|mailto:|#C|@[UW]|!)[^<>]*>")
_ENTITY = re.compile(r"&(?!amp;|lt;|gt;)")


def signed(secret: str, payload: dict[str, Any] | bytes, *, timestamp: int | None = None,
           retry_num: int | None = None) -> tuple[bytes, dict[str, str]]:
    """(body, headers) as Slack sends an Events API request, signed by slack_sdk's own verifier."""
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    ts = str(timestamp if timestamp is not None else int(time.time()))
    sig = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    assert sig is not None
    headers = {"content-type": "application/json", "x-slack-request-timestamp": ts, "x-slack-signature": sig}
    if retry_num is not None:
        headers["x-slack-retry-num"] = str(retry_num)
        headers["x-slack-retry-reason"] = "http_timeout"
    return body, headers


def new_ts() -> str:
    return f"{int(time.time())}.{uuid.uuid4().int % 1_000_000:06d}"


def event_callback(event: dict[str, Any], *, event_id: str | None = None, bot_user: str = BOT_USER) -> dict[str, Any]:
    return {
        "token": "deprecated-verification-token",
        "team_id": TEAM,
        "api_app_id": "A0APP00001",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(time.time()),
        "authorizations": [{"enterprise_id": None, "team_id": TEAM, "user_id": bot_user, "is_bot": True,
                            "is_enterprise_install": False}],
        "is_ext_shared_channel": False,
        "event_context": "4-eyJldCI6Im1lc3NhZ2UifQ",
    }


def message(text: str, *, channel: str = "D0DIRECT01", channel_type: str = "im", user: str = "U0ALICE001",
            ts: str | None = None, thread_ts: str | None = None, **extra: Any) -> dict[str, Any]:
    ev = {"type": "message", "channel": channel, "user": user, "text": text, "ts": ts or new_ts(),
          "event_ts": ts or new_ts(), "channel_type": channel_type, "client_msg_id": str(uuid.uuid4()), **extra}
    if thread_ts:
        ev["thread_ts"] = thread_ts
    return ev


def app_mention(text: str, *, channel: str = "C0GENERAL1", user: str = "U0ALICE001", ts: str | None = None,
                thread_ts: str | None = None) -> dict[str, Any]:
    ev = {"type": "app_mention", "user": user, "text": text, "ts": ts or new_ts(), "channel": channel,
          "event_ts": ts or new_ts(), "client_msg_id": str(uuid.uuid4())}
    if thread_ts:
        ev["thread_ts"] = thread_ts
    return ev


@dataclass
class FakeSlack:
    tokens: set[str]
    channels: set[str] = field(default_factory=lambda: {"D0DIRECT01", "C0GENERAL1"})  # the bot is a member
    other_channels: set[str] = field(default_factory=set)  # exist, but the bot is not in them
    posted: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)  # chat.update calls accepted
    statuses: list[dict[str, Any]] = field(default_factory=list)  # assistant.threads.setStatus calls accepted
    calls: int = 0
    unescaped: list[str] = field(default_factory=list)  # texts with raw control characters
    plan: list[tuple[int, str | None, dict[str, str]]] = field(default_factory=list)
    unreadable: int = 0  # how many of the next messages posted get an answer that is not JSON
    server: LoopbackServer | None = None
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # download path -> (bytes, mimetype)
    chunked_files: bool = False  # serve files without a Content-Length (chunked), as a proxy may

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url + "/api"

    def add_file(self, data: bytes, name: str, mimetype: str, declared_size: int | None = None) -> dict[str, Any]:
        """A file shared in a message: the ``files[]`` entry of the event, its bytes behind url_private_download."""
        assert self.server is not None
        fid = "F" + uuid.uuid4().hex[:10].upper()
        path = f"/files-pri/T0TEAM0001-{fid}/download/{name}"
        self.files[path] = (data, mimetype)
        return {"id": fid, "created": int(time.time()), "name": name, "title": name, "mimetype": mimetype,
                "filetype": name.rsplit(".", 1)[-1], "user": "U0ALICE001", "mode": "hosted", "is_external": False,
                "size": len(data) if declared_size is None else declared_size,
                "url_private": self.server.url + path.replace("/download/", "/"),
                "url_private_download": self.server.url + path}

    async def start(self) -> FakeSlack:
        self.server = LoopbackServer([Route("/api/chat.postMessage", self._post, methods=["POST"]),
                                      Route("/api/chat.update", self._update, methods=["POST"]),
                                      Route("/api/assistant.threads.setStatus", self._set_status, methods=["POST"]),
                                      Route("/files-pri/{rest:path}", self._file, methods=["GET"])])
        await self.server.start()
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()

    async def wait_for(self, predicate: Any, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            hits = [m for m in self.posted if predicate(m)]
            if hits:
                return hits
            if time.monotonic() > deadline:
                raise TimeoutError("no matching message reached the fake Slack")
            await asyncio.sleep(0.05)

    def text_of(self, ts: str) -> str | None:
        """A posted message's text as the channel shows it now (after its updates)."""
        texts = [m.get("text") or m.get("markdown_text") for m in [*self.posted, *self.updates] if m["ts"] == ts]
        return texts[-1] if texts else None

    async def _set_status(self, request: Request) -> Response:
        """assistant.threads.setStatus: channel_id, thread_ts and status required (status may be "" to clear)."""
        try:
            args = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return JSONResponse({"ok": False, "error": "invalid_json"})
        auth = request.headers.get("authorization", "")
        if not isinstance(args, dict) or auth[7:] not in self.tokens:
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        if args.get("channel_id") not in self.channels:
            return JSONResponse({"ok": False, "error": "channel_not_found"})
        ts = args.get("thread_ts")
        if not isinstance(ts, str) or not re.fullmatch(r"\d{10}\.\d{6}", ts):
            return JSONResponse({"ok": False, "error": "invalid_thread_ts"})
        if not isinstance(args.get("status"), str):
            return JSONResponse({"ok": False, "error": "invalid_arguments"})
        self.statuses.append(args)
        return JSONResponse({"ok": True})

    async def _update(self, request: Request) -> Response:
        """chat.update of one of the bot's messages, by channel and ts (cant_update_message otherwise)."""
        raw = await request.body()
        try:
            args = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return JSONResponse({"ok": False, "error": "invalid_json"})
        auth = request.headers.get("authorization", "")
        if not isinstance(args, dict) or auth[7:] not in self.tokens:
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        channel, ts = args.get("channel"), args.get("ts")
        if channel not in self.channels:
            return JSONResponse({"ok": False, "error": "channel_not_found"})
        if not any(m["ts"] == ts and m["channel"] == channel for m in self.posted):
            return JSONResponse({"ok": False, "error": "message_not_found"})
        text, md = args.get("text"), args.get("markdown_text")
        if md is not None and (text is not None or args.get("blocks")):
            return JSONResponse({"ok": False, "error": "markdown_text_conflict"})
        if not (text or md or args.get("blocks")):
            return JSONResponse({"ok": False, "error": "no_text"})
        if "blocks" in args and (problems := blocks_problems(args["blocks"])):
            return JSONResponse({"ok": False, "error": "invalid_blocks", "errors": problems})
        self.updates.append({**args, "_at": time.time()})
        return JSONResponse({"ok": True, "channel": channel, "ts": ts, "text": text or md})

    async def _file(self, request: Request) -> Response:
        """Slack's file host: without a valid bot token it answers 200 with its sign-in page, not an error."""
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return Response(b"<!DOCTYPE html><html><title>Slack</title>sign in</html>", media_type="text/html")
        found = self.files.get(request.url.path)
        if found is None:
            return Response(b"file not found", status_code=404, media_type="text/plain")
        if self.chunked_files:
            data = found[0]

            async def chunks() -> AsyncIterator[bytes]:
                for i in range(0, len(data), 256):
                    yield data[i:i + 256]

            return StreamingResponse(chunks(), media_type=found[1])
        return Response(found[0], media_type=found[1])

    async def _post(self, request: Request) -> Response:
        self.calls += 1
        ctype = request.headers.get("content-type", "").split(";")[0].strip()
        raw = await request.body()
        if ctype == "application/json":
            try:
                args = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return JSONResponse({"ok": False, "error": "invalid_json"})
            if not isinstance(args, dict):
                return JSONResponse({"ok": False, "error": "invalid_json"})
        elif ctype == "application/x-www-form-urlencoded":
            args = dict(parse_qsl(raw.decode()))
        else:
            return JSONResponse({"ok": False, "error": "invalid_form_data"})
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else args.get("token")
        if not token:
            return JSONResponse({"ok": False, "error": "not_authed"})
        if token not in self.tokens:
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        if self.plan:
            status, error, headers = self.plan.pop(0)
            body = {"ok": False, "error": error or "ratelimited"}
            return JSONResponse(body, status_code=status, headers=headers)
        channel = args.get("channel")
        if channel in self.other_channels:
            return JSONResponse({"ok": False, "error": "not_in_channel"})
        if channel not in self.channels:
            return JSONResponse({"ok": False, "error": "channel_not_found"})
        text, md = args.get("text"), args.get("markdown_text")
        if md is not None and (text is not None or args.get("blocks")):
            return JSONResponse({"ok": False, "error": "markdown_text_conflict"})
        if not (text or md or args.get("blocks") or args.get("attachments")):
            return JSONResponse({"ok": False, "error": "no_text"})
        if "blocks" in args and (problems := blocks_problems(args["blocks"])):
            return JSONResponse({"ok": False, "error": "invalid_blocks", "errors": problems})
        thread_ts = args.get("thread_ts")
        if thread_ts is not None and not re.fullmatch(r"\d+\.\d+", str(thread_ts)):
            return JSONResponse({"ok": False, "error": "invalid_thread_ts"})
        if isinstance(text, str) and (_ENTITY.search(text) or re.search(r"[<>]", _MARKUP.sub("", text))):
            self.unescaped.append(text)
        ts = new_ts()
        mentioned = re.findall(r"<@([UW][A-Z0-9]+)(?:\|[^<>]*)?>", str(text or md or ""))
        self.posted.append({**args, "ts": ts, "mentions": mentioned, "_at": time.time()})
        if self.unreadable:
            self.unreadable -= 1
            return Response(b"<html><body>502 upstream reset</body></html>", status_code=200,
                            media_type="text/html")
        warnings = {} if "charset" in request.headers.get("content-type", "") or ctype != "application/json" else {
            "warning": "missing_charset", "response_metadata": {"warnings": ["missing_charset"]}}
        return JSONResponse({"ok": True, "channel": channel, "ts": ts,
                             "message": {"type": "message", "user": BOT_USER, "text": text or md, "ts": ts},
                             **warnings})
