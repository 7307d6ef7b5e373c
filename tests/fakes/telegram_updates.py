"""The Bot API's update queue: ``getUpdates`` long polling, ``deleteWebhook``, ``setWebhook``, ``getWebhookInfo``.

As Telegram documents it (core.telegram.org/bots/api#getupdates): an update is confirmed, and never
returned again, once ``getUpdates`` is called with an ``offset`` higher than its ``update_id``; a negative
offset returns updates from the end of the queue; ``timeout`` holds the request up to that many seconds
while the queue is empty; ``getUpdates`` is refused with 409 while a webhook is set; a second concurrent
``getUpdates`` terminates the first with 409 ("terminated by other getUpdates request").
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse


def _error(code: int, description: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error_code": code, "description": description}, status_code=code)


@dataclass
class UpdateQueue:
    pending: list[dict[str, Any]] = field(default_factory=list)
    webhook_url: str = ""
    polls: list[dict[str, Any]] = field(default_factory=list)  # the arguments of every getUpdates call
    conflicts: int = 0  # requests refused or terminated with 409
    refuse: list[tuple[int, str]] = field(default_factory=list)  # the next polls fail with (code, description)
    _generation: int = 0

    def push(self, *updates: dict[str, Any]) -> None:
        self.pending.extend(updates)

    def unconfirmed(self) -> list[int]:
        return [u["update_id"] for u in self.pending]

    def _confirm(self, offset: int) -> None:
        if offset < 0:
            keep = -offset
            self.pending = self.pending[-keep:] if keep else []
        else:
            self.pending = [u for u in self.pending if u["update_id"] >= offset]

    async def get_updates(self, args: dict[str, Any]) -> JSONResponse:
        self.polls.append(dict(args))
        if self.refuse:
            code, description = self.refuse.pop(0)
            return _error(code, description)
        if self.webhook_url:
            self.conflicts += 1
            return _error(409, "Conflict: can't use getUpdates method while webhook is active; "
                               "use deleteWebhook to delete the webhook first")
        offset, limit, timeout = args.get("offset"), args.get("limit", 100), args.get("timeout", 0)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (offset or 0, limit, timeout)):
            return _error(400, "Bad Request: offset, limit and timeout must be integers")
        allowed = args.get("allowed_updates")
        if allowed is not None and not (isinstance(allowed, list) and all(isinstance(a, str) for a in allowed)):
            return _error(400, "Bad Request: can't parse allowed updates")
        if offset:
            self._confirm(offset)
        self._generation += 1
        mine = self._generation
        deadline = time.monotonic() + max(0, timeout)
        while True:
            if mine != self._generation:
                self.conflicts += 1
                return _error(409, "Conflict: terminated by other getUpdates request; "
                                   "make sure that only one bot instance is running")
            wanted = [u for u in self.pending
                      if not allowed or any(k in allowed for k in u if k != "update_id")]
            if wanted or time.monotonic() >= deadline:
                return JSONResponse({"ok": True, "result": wanted[:max(1, min(100, limit))]})
            await asyncio.sleep(0.02)

    def set_webhook(self, args: dict[str, Any]) -> JSONResponse:
        url = args.get("url")
        if not isinstance(url, str):
            return _error(400, "Bad Request: bad webhook: url is required")
        self.webhook_url = url
        return JSONResponse({"ok": True, "result": True, "description": "Webhook was set"})

    def delete_webhook(self, args: dict[str, Any]) -> JSONResponse:
        was = self.webhook_url
        self.webhook_url = ""
        if args.get("drop_pending_updates") is True:
            self.pending.clear()
        return JSONResponse({"ok": True, "result": True,
                             "description": "Webhook was deleted" if was else "Webhook is already deleted"})

    def webhook_info(self) -> JSONResponse:
        return JSONResponse({"ok": True, "result": {"url": self.webhook_url, "has_custom_certificate": False,
                                                    "pending_update_count": len(self.pending)}})
