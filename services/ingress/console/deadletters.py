"""The Dead letters page: the tenant's dead letters with their errors, and redrive of one or many after a
confirmation step. Each redrive is the API's (``POST .../dead-letters/{id}/redrive``): audited, and
harmless when repeated, since the original record goes back unchanged, event id included."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentbus.services.ingress.console.apiclient import ApiError
from agentbus.services.ingress.console.web import Ctx, checked_form, render, session

MAX_SELECTED = 100


async def _letters(ctx: Ctx) -> list[dict[str, Any]]:
    return list(await ctx.api.get(f"/tenants/{ctx.tenant}/dead-letters")) if ctx.tenant else []


def _ids(values: list[str]) -> list[str]:
    """The well-formed ids among those posted, in order, once each (anything else cannot name a letter)."""
    out: list[str] = []
    for v in values[:MAX_SELECTED]:
        try:
            ident = str(uuid.UUID(v))
        except ValueError:
            continue
        if ident not in out:
            out.append(ident)
    return out


async def list_page(request: Request) -> Response:
    ctx = await session(request)
    return render(ctx, "deadletters.html", letters=await _letters(ctx), error=None)


async def confirm(request: Request) -> Response:
    ctx = await session(request)
    form = await checked_form(request, ctx)
    one = request.query_params.get("one")
    ids = _ids([one] if one else [str(v) for v in form.getlist("ids")])
    letters = await _letters(ctx)
    chosen = [x for x in letters if x["id"] in ids]
    if not chosen:
        return render(ctx, "deadletters.html", status=422, letters=letters, error=ctx.t("dl.nothing_selected"))
    return render(ctx, "deadletters_confirm.html", letters=chosen)


async def redrive(request: Request) -> Response:
    ctx = await session(request)
    form = await checked_form(request, ctx)
    results = []
    for ident in _ids([str(v) for v in form.getlist("ids")]):
        try:
            out = await ctx.api.post(f"/tenants/{ctx.tenant}/dead-letters/{ident}/redrive")
            results.append({"id": ident, "ok": True, "detail": out["original_topic"]})
        except ApiError as err:
            if err.status == 401:
                raise
            results.append({"id": ident, "ok": False, "detail": err.reason, "status": err.status})
    if not results:
        return render(ctx, "deadletters.html", status=422, letters=await _letters(ctx),
                      error=ctx.t("dl.nothing_selected"))
    failed = [r for r in results if not r["ok"]]
    status = int(failed[0]["status"]) if failed and len(failed) == len(results) else 200
    return render(ctx, "deadletters_done.html", status=status, results=results)


routes = [
    Route("/dead-letters", list_page, methods=["GET"]),
    Route("/dead-letters/confirm", confirm, methods=["POST"]),
    Route("/dead-letters/redrive", redrive, methods=["POST"]),
]
