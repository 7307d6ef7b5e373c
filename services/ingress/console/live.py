"""The Live page: messages, replies and deliveries as they happen, streamed by server-sent events.

The console follows the event log itself (no consumer group: it commits nothing and disturbs no service),
keeping only the tenants the session may see, as the API told it. A stream starts from the end offsets read
before it says ``ready``, so nothing published after that is missed, and it ends when the session's JWT
expires (the page then reloads, to the login page).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from agentbus.eventlog import Filter, Logged, end_offsets, follow
from agentbus.events import DeliveryCompleted, Event, MessageReceived, ReplyGenerated
from agentbus.services.ingress.console.web import Ctx, render, session, url
from agentbus.topics import topic_of

log = structlog.get_logger("agentbus.ingress.console.live")
KINDS = (MessageReceived, ReplyGenerated, DeliveryCompleted)
KEEPALIVE_S = 15.0
MAX_FILTER = 256


def _filters(request: Request, ctx: Ctx) -> dict[str, str]:
    q = request.query_params
    tenant = q.get("tenant", ctx.tenant or "")
    if tenant and tenant not in ctx.tenants:
        tenant = ctx.tenant or ""
    if not ctx.is_owner:
        tenant = ctx.tenant or ""
    return {"tenant": tenant, "channel": q.get("channel", "")[:MAX_FILTER],
            "conversation": q.get("conversation", "")[:MAX_FILTER]}


async def live_page(request: Request) -> Response:
    ctx = await session(request)
    filters = _filters(request, ctx)
    channels = await ctx.api.get(f"/tenants/{filters['tenant']}/channels") if filters["tenant"] else []
    return render(ctx, "live.html", filters=filters, channels=[c["id"] for c in channels])


def row(ctx: Ctx, logged: Logged) -> dict[str, Any]:
    e = logged.event
    d: Any = e.data
    if isinstance(e, MessageReceived):
        text, detail = d.text, d.sender.name or d.sender.id
    elif isinstance(e, ReplyGenerated):
        text, detail = d.text, d.model
    else:
        text, detail = d.error or "", d.status
    return {"id": str(e.id), "kind": e.TYPE, "time": e.occurred_at.astimezone(UTC).strftime("%H:%M:%S"),
            "tenant": e.tenant, "channel": d.channel, "conversation": e.conversation, "text": text[:500],
            "detail": detail, "correlation": str(e.correlation_id), "replay": e.replay is not None}


def keeper(filters: dict[str, str], allowed: list[str]) -> Callable[[Event], bool]:
    base = Filter(types=tuple(k.TYPE for k in KINDS), tenant=filters["tenant"] or None,
                  conversation=filters["conversation"] or None)
    channel = filters["channel"]

    def keep(e: Event) -> bool:
        return base(e) and e.tenant in allowed and (not channel or getattr(e.data, "channel", None) == channel)

    return keep


def sse(event: str, data: str) -> bytes:
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {event}\n{lines}\n".encode()


async def _expiry(ctx: Ctx) -> float:
    exp = ctx.me.get("expires_at")
    if not exp:
        return float("inf")
    left = (datetime.fromisoformat(str(exp)) - datetime.now(UTC)).total_seconds()
    return asyncio.get_running_loop().time() + max(0.0, left)


async def events(request: Request) -> Response:
    ctx = await session(request)
    filters = _filters(request, ctx)
    allowed = [filters["tenant"]] if filters["tenant"] else list(ctx.tenants)
    settings = ctx.console.settings
    topics = [topic_of(settings.topic_prefix, k) for k in KINDS]
    template = ctx.console.env.get_template("_live_row.html")
    ends_at = await _expiry(ctx)

    async def stream() -> AsyncIterator[bytes]:
        queue: asyncio.Queue[Logged] = asyncio.Queue(maxsize=1000)
        start = await end_offsets(settings, topics)

        async def pump() -> None:
            async for logged in follow(settings, topics, keep=keeper(filters, allowed), start=start,
                                       keyring=ctx.console.keyring):
                await queue.put(logged)

        task = asyncio.create_task(pump())
        log.info("console_live_opened", tenants=len(allowed))
        try:
            yield sse("ready", "")
            loop = asyncio.get_running_loop()
            while True:
                left = ends_at - loop.time()
                if left <= 0 or task.done():
                    yield sse("end", "")
                    return
                try:
                    logged = await asyncio.wait_for(queue.get(), timeout=min(KEEPALIVE_S, left))
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                yield sse("row", template.render(t=ctx.t, url=url, r=row(ctx, logged)))
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            log.info("console_live_closed")

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})


routes = [Route("/live", live_page, methods=["GET"]), Route("/live/events", events, methods=["GET"])]
