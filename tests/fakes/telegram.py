"""A local Telegram Bot API (``sendMessage``, ``sendPhoto``, ``sendDocument``, ``answerCallbackQuery``,
``sendChatAction``, ``editMessageText``, ``getMe``, getUpdates in telegram_updates.py), webhook update builders.

``sendMessage`` is checked as Telegram does: the bot token in the path, the chat (unknown → "chat not
found", blocked → 403, upgraded to a supergroup → ``migrate_to_chat_id``), ``reply_parameters``, the
4096-character limit and, with ``parse_mode: MarkdownV2``, the markup itself: a reserved character that is
not escaped or an entity left open is "can't parse entities", exactly the failure a wrong escaper causes.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentbus.http import LoopbackServer
from tests.fakes.telegram_rich import keyboard_problem, media_problem
from tests.fakes.telegram_updates import UpdateQueue

BOT_ID = 7000000001
BOT_TOKEN = f"{BOT_ID}:AAFakeTokenForTests_0123456789abcdefgh"
BOT_USERNAME = "agentbus_test_bot"
RESERVED = set("_*[]()~`>#+-=|{}.!")
JSON_PARAMS = {"chat_id", "message_thread_id", "reply_parameters", "reply_markup", "entities",
               "link_preview_options", "disable_notification", "protect_content"}
# sendChatAction's documented actions
ACTIONS = {"typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
           "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note"}
_update_ids = itertools.count(100_000)
_message_ids = itertools.count(1)


class ParseError(ValueError):
    pass


def _u16(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


def parse_markdown_v2(s: str) -> tuple[str, list[dict[str, Any]]]:
    """(plain text, entities) of a MarkdownV2 text, or ``ParseError`` with Telegram's wording."""
    out: list[str] = []
    entities: list[dict[str, Any]] = []
    stack: list[tuple[str, int]] = []  # (entity type, offset)
    toggles = {"__": "underline", "||": "spoiler", "*": "bold", "_": "italic", "~": "strikethrough"}
    i, n = 0, len(s)

    def pos() -> int:
        return _u16("".join(out))

    def toggle(kind: str) -> None:
        if stack and stack[-1][0] == kind:
            _, start = stack.pop()
            entities.append({"type": kind, "offset": start, "length": pos() - start})
        elif any(k == kind for k, _ in stack):
            raise ParseError(f"Can't find end of {kind} entity at byte offset {i}")
        else:
            stack.append((kind, pos()))

    def scan(stop: str, escapable: str) -> str:
        nonlocal i
        buf = []
        while i < n:
            if s[i] == "\\" and i + 1 < n and s[i + 1] in escapable:
                buf.append(s[i + 1])
                i += 2
            elif s.startswith(stop, i):
                i += len(stop)
                return "".join(buf)
            else:
                buf.append(s[i])
                i += 1
        raise ParseError(f"Can't find end of the entity starting at byte offset {i}")

    while i < n:
        c = s[i]
        if c == "\\":
            if i + 1 < n and 1 <= ord(s[i + 1]) <= 126:
                out.append(s[i + 1])
                i += 2
                continue
            raise ParseError("Character '\\' is reserved and must be escaped with the preceding '\\'")
        if c == ">" and (i == 0 or s[i - 1] == "\n"):
            i += 1
            continue
        if s.startswith("```", i):
            i += 3
            start = pos()
            body = scan("```", "`\\")
            first, nl, rest = body.partition("\n")
            code = rest if nl and first and " " not in first else body.removeprefix("\n")
            out.append(code)
            entities.append({"type": "pre", "offset": start, "length": _u16(code)})
            continue
        if c == "`":
            i += 1
            start = pos()
            code = scan("`", "`\\")
            out.append(code)
            entities.append({"type": "code", "offset": start, "length": _u16(code)})
            continue
        two = s[i:i + 2]
        if two in ("__", "||"):
            toggle(toggles[two])
            i += 2
            continue
        if c in "*_~":
            toggle(toggles[c])
            i += 1
            continue
        if c == "[":
            stack.append(("text_link", pos()))
            i += 1
            continue
        if c == "]" and stack and stack[-1][0] == "text_link":
            if not s.startswith("(", i + 1):
                raise ParseError("Character ']' is reserved and must be escaped with the preceding '\\'")
            i += 2
            url = scan(")", ")\\")
            _, start = stack.pop()
            entities.append({"type": "text_link", "offset": start, "length": pos() - start, "url": url})
            continue
        if c in RESERVED:
            raise ParseError(f"Character '{c}' is reserved and must be escaped with the preceding '\\'")
        out.append(c)
        i += 1
    if stack:
        raise ParseError(f"Can't find end of {stack[-1][0]} entity at byte offset {n}")
    return "".join(out), sorted(entities, key=lambda e: (e["offset"], -e["length"]))


# ---------------------------------------------------------------- updates as Telegram sends them


def user(uid: int = 42, first: str = "Alice", username: str | None = "alice", is_bot: bool = False) -> dict[str, Any]:
    u: dict[str, Any] = {"id": uid, "is_bot": is_bot, "first_name": first, "language_code": "en"}
    if username:
        u["username"] = username
    return u


def chat(cid: int = 42, kind: str = "private", title: str | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"id": cid, "type": kind}
    if kind == "private":
        c.update(first_name="Alice", username="alice")
    else:
        c["title"] = title or "Team chat"
    return c


def mention_entities(text: str, *names: str) -> list[dict[str, Any]]:
    """``mention`` entities for each ``@name`` in ``text``, offsets in UTF-16 code units as Telegram counts."""
    out = []
    for name in names:
        at = text.index(f"@{name}")
        out.append({"type": "mention", "offset": _u16(text[:at]), "length": _u16(f"@{name}")})
    return out


def update(text: str | None, *, chat_: dict[str, Any] | None = None, from_: dict[str, Any] | None = None,
           entities: list[dict[str, Any]] | None = None, edited: bool = False, update_id: int | None = None,
           message_id: int | None = None, **extra: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "message_id": message_id or next(_message_ids),
        "from": from_ or user(),
        "chat": chat_ or chat(),
        "date": int(time.time()),
        **extra,
    }
    if text is not None:
        msg["text"] = text
    if entities:
        msg["entities"] = entities
    if edited:
        msg["edit_date"] = int(time.time())
    return {"update_id": update_id or next(_update_ids), ("edited_message" if edited else "message"): msg}


# ---------------------------------------------------------------- the Bot API


@dataclass
class FakeTelegram:
    token: str = BOT_TOKEN
    chats: dict[int, str] = field(default_factory=lambda: {42: "private", -100123: "supergroup", -555: "group"})
    blocked: set[int] = field(default_factory=set)
    migrated: dict[int, int] = field(default_factory=dict)  # old group id -> supergroup id
    sent: list[dict[str, Any]] = field(default_factory=list)
    calls: list[float] = field(default_factory=list)  # times of sendMessage calls
    actions: list[dict[str, Any]] = field(default_factory=list)  # sendChatAction calls accepted
    edits: list[dict[str, Any]] = field(default_factory=list)  # editMessageText calls accepted
    plan: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    server: LoopbackServer | None = None
    updates: UpdateQueue = field(default_factory=UpdateQueue)  # getUpdates (long polling) and the webhook setting
    _messages: dict[int, set[int]] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # file_id -> (file_path, bytes)
    file_downloads: int = 0
    media: list[dict[str, Any]] = field(default_factory=list)  # sendPhoto / sendDocument calls accepted
    # as plan, for the next media calls only; None lets that call through
    media_plan: list[tuple[int, str, dict[str, Any]] | None] = field(default_factory=list)
    answered: list[dict[str, Any]] = field(default_factory=list)  # answerCallbackQuery calls accepted

    def add_file(self, data: bytes, path: str = "photos/file_0.jpg") -> str:
        """A file the bot may fetch (getFile, then /file/bot<token>/<file_path>); returns its file_id."""
        file_id = f"AgACAgIAAxkBAAI{uuid.uuid4().hex}"
        self.files[file_id] = (path, data)
        return file_id

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    async def start(self) -> FakeTelegram:
        self.server = LoopbackServer([
            Route("/bot{token}/sendMessage", self._send, methods=["POST"]),
            Route("/bot{token}/getMe", self._get_me, methods=["GET", "POST"]),
            Route("/bot{token}/sendPhoto", self._send_media, methods=["POST"]),
            Route("/bot{token}/sendDocument", self._send_media, methods=["POST"]),
            Route("/bot{token}/answerCallbackQuery", self._answer_query, methods=["POST"]),
            Route("/bot{token}/sendChatAction", self._chat_action, methods=["POST"]),
            Route("/bot{token}/editMessageText", self._edit, methods=["POST"]),
            Route("/bot{token}/getFile", self._get_file, methods=["GET", "POST"]),
            Route("/file/bot{token}/{path:path}", self._download, methods=["GET"]),
            Route("/bot{token}/{method:str}", self._updates, methods=["GET", "POST"]),
        ])
        await self.server.start()
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()

    def remember(self, chat_id: int, message_id: int) -> None:
        self._messages.setdefault(chat_id, set()).add(message_id)

    async def wait_for(self, predicate: Any, timeout: float = 30.0, *, media: bool = False) -> list[dict[str, Any]]:
        """The accepted sendMessage calls (or, with ``media``, sendPhoto/sendDocument calls) matching predicate."""
        deadline = time.monotonic() + timeout
        while True:
            hits = [m for m in (self.media if media else self.sent) if predicate(m)]
            if hits:
                return hits
            if time.monotonic() > deadline:
                raise TimeoutError("no matching message reached the fake Telegram")
            await asyncio.sleep(0.05)

    @staticmethod
    def _error(code: int, description: str, parameters: dict[str, Any] | None = None) -> JSONResponse:
        body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if parameters:
            body["parameters"] = parameters
        return JSONResponse(body, status_code=code)

    async def _args(self, request: Request) -> dict[str, Any] | None:
        ctype = request.headers.get("content-type", "").split(";")[0].strip()
        raw = await request.body()
        if ctype == "application/json":
            data = orjson.loads(raw) if raw else {}
            return data if isinstance(data, dict) else None
        if ctype == "application/x-www-form-urlencoded" or not raw:
            args: dict[str, Any] = {}
            for k, v in parse_qsl(raw.decode()):  # non-string parameters arrive JSON-encoded
                try:
                    args[k] = orjson.loads(v) if k in JSON_PARAMS else v
                except orjson.JSONDecodeError:
                    args[k] = v
            return args
        return None

    async def _updates(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return self._error(401, "Unauthorized")
        args = await self._args(request)
        if args is None:
            return self._error(400, "Bad Request: invalid request body")
        args = {**dict(request.query_params), **args}
        for k in ("offset", "limit", "timeout"):
            if isinstance(args.get(k), str) and args[k].lstrip("-").isdigit():
                args[k] = int(args[k])
        if isinstance(args.get("allowed_updates"), str):
            args["allowed_updates"] = orjson.loads(args["allowed_updates"])
        if isinstance(args.get("drop_pending_updates"), str):
            args["drop_pending_updates"] = args["drop_pending_updates"].lower() == "true"
        method = request.path_params["method"].lower()
        if method == "getupdates":
            return await self.updates.get_updates(args)
        if method == "setwebhook":
            return self.updates.set_webhook(args)
        if method == "deletewebhook":
            return self.updates.delete_webhook(args)
        if method == "getwebhookinfo":
            return self.updates.webhook_info()
        return self._error(404, "Not Found: method not found")

    async def _get_file(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return self._error(401, "Unauthorized")
        args = {**dict(request.query_params), **(await self._args(request) or {})}
        found = self.files.get(str(args.get("file_id")))
        if found is None:
            return self._error(400, "Bad Request: invalid file_id")
        file_id = str(args["file_id"])
        return JSONResponse({"ok": True, "result": {"file_id": file_id, "file_unique_id": file_id[-16:],
                                                     "file_size": len(found[1]), "file_path": found[0]}})

    async def _download(self, request: Request) -> Response:
        """The file server: bytes as application/octet-stream, whatever they are (as Telegram serves them)."""
        if request.path_params["token"] != self.token:
            return Response(b"Unauthorized", status_code=401)
        for path, data in self.files.values():
            if path == request.path_params["path"]:
                self.file_downloads += 1
                return Response(data, media_type="application/octet-stream")
        return JSONResponse({"ok": False, "error_code": 404, "description": "Not Found"}, status_code=404)

    async def _get_me(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return self._error(401, "Unauthorized")
        return JSONResponse({"ok": True, "result": {**user(BOT_ID, "Agentbus", BOT_USERNAME, True),
                                                     "can_join_groups": True, "can_read_all_group_messages": False,
                                                     "supports_inline_queries": False}})

    def text_of(self, message_id: int) -> str | None:
        """A sent message's text as the chat shows it now (after its edits)."""
        sent = [m["plain"] for m in self.sent if m["message_id"] == message_id]
        edited = [e["plain"] for e in self.edits if e["message_id"] == message_id]
        return (edited or sent or [None])[-1]

    async def _chat_action(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return self._error(401, "Unauthorized")
        args = await self._args(request)
        if args is None:
            return self._error(400, "Bad Request: invalid request body")
        chat_id = args.get("chat_id")
        if isinstance(chat_id, str) and chat_id.lstrip("-").isdigit():
            chat_id = int(chat_id)
        if chat_id not in self.chats:
            return self._error(400, "Bad Request: chat not found")
        if args.get("action") not in ACTIONS:
            return self._error(400, "Bad Request: wrong parameter action in request")
        self.actions.append({**args, "chat_id": chat_id, "_at": time.monotonic()})
        return JSONResponse({"ok": True, "result": True})

    async def _edit(self, request: Request) -> Response:
        """editMessageText of one of the bot's messages: checked as sendMessage is, and refused with
        "message is not modified" when the text and markup are what the message already shows."""
        if request.path_params["token"] != self.token:
            return self._error(401, "Unauthorized")
        args = await self._args(request)
        if args is None:
            return self._error(400, "Bad Request: invalid request body")
        chat_id, mid = args.get("chat_id"), args.get("message_id")
        if isinstance(chat_id, str) and chat_id.lstrip("-").isdigit():
            chat_id = int(chat_id)
        if isinstance(mid, str) and mid.isdigit():
            mid = int(mid)
        if chat_id not in self.chats:
            return self._error(400, "Bad Request: chat not found")
        mine = [m for m in self.sent if m["message_id"] == mid and m["chat_id"] == chat_id]
        if not mine:
            return self._error(400, "Bad Request: message to edit not found")
        text = args.get("text")
        if not isinstance(text, str) or not text.strip():
            return self._error(400, "Bad Request: message text is empty")
        plain, entities = text, []
        if args.get("parse_mode") == "MarkdownV2":
            try:
                plain, entities = parse_markdown_v2(text)
            except ParseError as err:
                return self._error(400, f"Bad Request: can't parse entities: {err}")
        elif args.get("parse_mode") is not None:
            return self._error(400, f"Bad Request: unsupported parse_mode {args['parse_mode']}")
        if _u16(plain) > 4096:
            return self._error(400, "Bad Request: MESSAGE_TOO_LONG")
        if "reply_markup" in args and (problem := keyboard_problem(args["reply_markup"])):
            return self._error(400, problem)
        before = ([e for e in self.edits if e["message_id"] == mid] or mine)[-1]
        if before["plain"] == plain and before["entities"] == entities:
            return self._error(400, "Bad Request: message is not modified: specified new message content and "
                                    "reply markup are exactly the same as a current content and reply markup "
                                    "of the message")
        self.edits.append({**args, "chat_id": chat_id, "message_id": mid, "plain": plain, "entities": entities,
                           "_at": time.monotonic()})
        result = {"message_id": mid, "from": user(BOT_ID, "Agentbus", BOT_USERNAME, True),
                  "chat": chat(chat_id, self.chats[chat_id]), "date": int(time.time()),
                  "edit_date": int(time.time()), "text": plain}
        return JSONResponse({"ok": True, "result": result})

    async def _send(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return self._error(401, "Unauthorized")
        self.calls.append(time.monotonic())
        args = await self._args(request)
        if args is None:
            return self._error(400, "Bad Request: invalid request body")
        if self.plan:
            code, description, parameters = self.plan.pop(0)
            return self._error(code, description, parameters)
        chat_id = args.get("chat_id")
        if isinstance(chat_id, str) and chat_id.lstrip("-").isdigit():
            chat_id = int(chat_id)
        if chat_id in self.migrated:
            return self._error(400, "Bad Request: group chat was upgraded to a supergroup chat",
                               {"migrate_to_chat_id": self.migrated[chat_id]})
        if chat_id not in self.chats:
            return self._error(400, "Bad Request: chat not found")
        if chat_id in self.blocked:
            return self._error(403, "Forbidden: bot was blocked by the user")
        text = args.get("text")
        if not isinstance(text, str) or not text.strip():
            return self._error(400, "Bad Request: message text is empty")
        mode = args.get("parse_mode")
        entities: list[dict[str, Any]] = []
        plain = text
        if mode == "MarkdownV2":
            try:
                plain, entities = parse_markdown_v2(text)
            except ParseError as err:
                return self._error(400, f"Bad Request: can't parse entities: {err}")
        elif mode is not None:
            return self._error(400, f"Bad Request: unsupported parse_mode {mode}")
        if _u16(plain) > 4096:
            return self._error(400, "Bad Request: message is too long")
        if "reply_markup" in args and (problem := keyboard_problem(args["reply_markup"])):
            return self._error(400, problem)
        rp = args.get("reply_parameters")
        if rp is not None:
            if not isinstance(rp, dict) or not isinstance(rp.get("message_id"), int):
                return self._error(400, "Bad Request: invalid reply parameters")
            if rp["message_id"] not in self._messages.get(chat_id, set()) and not rp.get("allow_sending_without_reply"):
                return self._error(400, "Bad Request: message to be replied not found")
        mid = next(_message_ids)
        self.remember(chat_id, mid)
        self.sent.append({**args, "chat_id": chat_id, "plain": plain, "entities": entities, "message_id": mid,
                          "_at": time.monotonic()})
        result = {"message_id": mid, "from": user(BOT_ID, "Agentbus", BOT_USERNAME, True),
                  "chat": chat(chat_id, self.chats[chat_id]), "date": int(time.time()), "text": plain}
        if entities:
            result["entities"] = entities
        return JSONResponse({"ok": True, "result": result})

    async def _send_media(self, request: Request) -> Response:
        """sendPhoto / sendDocument by file_id or URL: the chat checked as for sendMessage, then the file."""
        if request.path_params["token"] != self.token:
            return self._error(401, "Unauthorized")
        args = await self._args(request)
        if args is None:
            return self._error(400, "Bad Request: invalid request body")
        if self.media_plan and (planned := self.media_plan.pop(0)) is not None:
            return self._error(*planned)
        field_ = "photo" if request.url.path.endswith("/sendPhoto") else "document"
        chat_id = args.get("chat_id")
        if isinstance(chat_id, str) and chat_id.lstrip("-").isdigit():
            chat_id = int(chat_id)
        if chat_id not in self.chats:
            return self._error(400, "Bad Request: chat not found")
        if problem := media_problem(args, field_):
            return self._error(400, problem)
        if "reply_markup" in args and (problem := keyboard_problem(args["reply_markup"])):
            return self._error(400, problem)
        mid = next(_message_ids)
        self.remember(chat_id, mid)
        self.media.append({**args, "chat_id": chat_id, "kind": field_, "message_id": mid, "_at": time.monotonic()})
        result: dict[str, Any] = {"message_id": mid, "from": user(BOT_ID, "Agentbus", BOT_USERNAME, True),
                                  "chat": chat(chat_id, self.chats[chat_id]), "date": int(time.time())}
        if isinstance(args.get("caption"), str):
            result["caption"] = args["caption"]
        file_id = f"BQACAgIAAxkBAAI{uuid.uuid4().hex}"
        result[field_] = ([{"file_id": file_id, "file_unique_id": file_id[-16:], "width": 90, "height": 90}]
                          if field_ == "photo" else {"file_id": file_id, "file_unique_id": file_id[-16:]})
        return JSONResponse({"ok": True, "result": result})

    async def _answer_query(self, request: Request) -> Response:
        """answerCallbackQuery: each query id once (a second answer is "query is too old ... or query ID is
        invalid", as Telegram says for both)."""
        if request.path_params["token"] != self.token:
            return self._error(401, "Unauthorized")
        args = await self._args(request)
        if args is None:
            return self._error(400, "Bad Request: invalid request body")
        qid = args.get("callback_query_id")
        if not isinstance(qid, str) or not qid or any(a["callback_query_id"] == qid for a in self.answered):
            return self._error(400, "Bad Request: query is too old and response timeout expired or query ID is "
                                    "invalid")
        text = args.get("text")
        if text is not None and (not isinstance(text, str) or len(text) > 200):
            return self._error(400, "Bad Request: text is too long")
        self.answered.append({**args, "_at": time.monotonic()})
        return JSONResponse({"ok": True, "result": True})
