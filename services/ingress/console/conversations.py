"""The Conversations page: the tenant's conversations by last activity (``GET /tenants/{t}/conversations``),
and one conversation's history (``.../turns``) beside the memories made in it (``.../memories``), each
turn linked to its trace; operators forget one memory after a confirmation (``POST .../memories/{id}/forget``,
a command memory applies a moment later) or start a replay of the conversation.

A conversation key holds ``/`` (``tenant/channel/chat``, and chat ids may hold more), so the page's path ends
with the whole key, as the API's does.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentbus.services.ingress.console.apiclient import ApiError
from agentbus.services.ingress.console.web import Ctx, checked_form, redirect, render, session

CURSOR_MAX = 512


def _cursor(request: Request) -> str | None:
    return request.query_params.get("before", "")[:CURSOR_MAX] or None


async def list_page(request: Request) -> Response:
    ctx = await session(request)
    page = await ctx.api.get(f"/tenants/{ctx.tenant}/conversations", limit=50, before=_cursor(request)) \
        if ctx.tenant else {"items": [], "next_before": None}
    return render(ctx, "conversations.html", conversations=page["items"], next_before=page["next_before"])


async def _memories(ctx: Ctx, key: str) -> tuple[list[dict[str, Any]], str | None]:
    """The conversation's memories, or why they cannot be shown (semantic memory off or away): the history
    is shown either way."""
    try:
        page = await ctx.api.get(f"/tenants/{ctx.tenant}/conversations/{quote(key, safe='/')}/memories", limit=100)
    except ApiError as err:
        if err.status == 401:
            raise
        return [], err.reason
    return list(page["items"]), None


async def _conversation(ctx: Ctx, key: str, status: int = 200, error: str | None = None,
                        notice: str | None = None) -> Response:
    turns = await ctx.api.get(f"/tenants/{ctx.tenant}/conversations/{quote(key, safe='/')}/turns", limit=50,
                              before=_cursor(ctx.request))
    memories, memory_error = await _memories(ctx, key)
    return render(ctx, "conversation.html", status=status, key=key, turns=turns["items"],
                  next_before=turns["next_before"], memories=memories, memory_error=memory_error, error=error,
                  notice=notice)


async def conversation_page(request: Request) -> Response:
    ctx = await session(request)
    forgot = request.query_params.get("forgot", "")
    notice = forgot if _uuid(forgot) else None
    return await _conversation(ctx, request.path_params["key"], notice=notice)


def _uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


async def confirm(request: Request) -> Response:
    """What will be forgotten, asked once more (the memory as memory lists it)."""
    ctx = await session(request)
    form = await checked_form(request, ctx)
    key, memory = str(form.get("conversation") or ""), _uuid(str(form.get("memory") or ""))
    memories, _ = await _memories(ctx, key) if key else ([], None)
    chosen = next((m for m in memories if m["id"] == memory), None)
    if chosen is None:
        return render(ctx, "error.html", status=404, title="error",
                      reason=f"{ctx.t('conv.no_memory')} {str(form.get('memory') or '')[:64]!r}")
    return render(ctx, "memory_confirm.html", key=key, memory=chosen)


async def forget(request: Request) -> Response:
    ctx = await session(request)
    form = await checked_form(request, ctx)
    key, memory = str(form.get("conversation") or ""), _uuid(str(form.get("memory") or ""))
    if memory is None:
        return render(ctx, "error.html", status=422, title="error", reason=ctx.t("conv.bad_memory"))
    try:
        await ctx.api.post(f"/tenants/{ctx.tenant}/memories/{memory}/forget")
    except ApiError as err:
        if err.status == 401 or not key:
            raise
        return await _conversation(ctx, key, status=err.status, error=err.reason)
    return redirect(f"/conversations/{quote(key, safe='/')}?tenant={ctx.tenant}&forgot={memory}") if key else \
        redirect(f"/conversations?tenant={ctx.tenant}")


routes = [
    Route("/conversations", list_page, methods=["GET"]),
    Route("/conversations/{key:path}", conversation_page, methods=["GET"]),
    Route("/memories/confirm", confirm, methods=["POST"]),
    Route("/memories/forget", forget, methods=["POST"]),
]
