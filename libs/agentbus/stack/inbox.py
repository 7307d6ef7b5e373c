"""The demo inbox ``agentbus up`` runs: a local receiver for the generic webhook channel's signed pushes.

It verifies each push's Standard Webhooks signature with the channel's secret, de-duplicates by
``webhook-id`` as the specification asks receivers to, prints the reply, and keeps the last replies so
``agentbus send --wait`` can show the answer.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import orjson
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentbus.channeltypes import WebhookChannel
from agentbus.config import PlatformConfig


class PushVerifier:
    """Checks a signed push as a Standard Webhooks receiver does, with the secret of the channel it is for.

    Every receiver of the webhook channel's pushes (the demo inbox, the test, chaos and benchmark sinks) uses
    this one check."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self._hooks = {channel: Webhook(secret) for channel, secret in secrets.items()}

    def problem(self, channel: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, str] | None:
        """None for a genuine push; else the status to answer and why."""
        wh = self._hooks.get(channel)
        if wh is None:
            return 404, f"unknown channel {channel!r}"
        try:
            wh.verify(body, dict(headers), json_parse=False)
        except (WebhookVerificationError, ValueError) as err:
            return 401, f"invalid signature: {err}"
        return None


def inbox_app(config: PlatformConfig, printer: Any = print, keep: int = 1000) -> Starlette:
    verifier = PushVerifier({
        ch.id: (ch.push_secret or ch.secret).value() for ch in config.channels if isinstance(ch, WebhookChannel)
    })
    replies: deque[dict[str, Any]] = deque(maxlen=keep)
    seen: set[str] = set()

    async def receive(request: Request) -> Response:
        channel = request.path_params["channel_id"]
        body = await request.body()
        bad = verifier.problem(channel, body, request.headers)
        if bad is not None:
            return JSONResponse({"error": bad[1]}, status_code=bad[0])
        msg_id = request.headers["webhook-id"]
        if msg_id in seen:
            return JSONResponse({"ok": True, "duplicate": True})
        seen.add(msg_id)
        reply = orjson.loads(body)
        reply["channel"] = channel
        replies.append(reply)
        printer(f"reply to {channel}/{reply.get('conversation')}: {reply.get('text')}")
        return JSONResponse({"ok": True}, headers={"x-message-id": msg_id})

    async def listing(request: Request) -> Response:
        conv = request.query_params.get("conversation")
        in_reply_to = request.query_params.get("in_reply_to")
        out = [
            r for r in replies
            if (conv is None or r.get("conversation") == conv)
            and (in_reply_to is None or r.get("in_reply_to") == in_reply_to)
        ]
        return JSONResponse({"replies": out})

    return Starlette(routes=[Route("/inbox/{channel_id}", receive, methods=["POST"]),
                             Route("/replies", listing, methods=["GET"])])
