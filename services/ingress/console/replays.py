"""The Replay page: start a replay run of a conversation, a message or a time range, optionally with another
model or system prompt (``POST /tenants/{t}/replays``), follow its progress (the run page polls
``GET .../replays/{run}`` through htmx every second until it is done or failed), and read its report
(``.../report``): each original reply beside its replayed one, with a word-level diff.

The diff is computed here with difflib over words (each CJK character is a word of its own, Chinese having
no spaces) and rendered with ``<ins>`` and ``<del>``: the text is escaped by the templates, never marked safe.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentbus.services.ingress.console.apiclient import ApiError
from agentbus.services.ingress.console.web import Ctx, checked_form, redirect, render, session

FIELDS = ("from", "conversation", "correlation", "since", "until", "model", "system_prompt", "limit")
DEFAULTS = {"from": "context", "limit": "20"}
FROMS = ("context", "message", "job")
RUN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_FIELD = 8000
MAX_TOKENS = 4000  # of each text the diff compares (difflib is quadratic at worst)
CJK = "\u2e80-\u2fff\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
TOKEN = re.compile(rf"\s+|[{CJK}]|\w+|[^\w\s]")
Segments = list[tuple[str, str]]


def word_diff(original: str, replayed: str) -> tuple[Segments, Segments]:
    """The two texts as segments: the original's ``equal`` and ``delete``, the replayed one's ``equal`` and
    ``insert``, in order, so each side reads as itself with what changed marked."""
    a, b = TOKEN.findall(original)[:MAX_TOKENS], TOKEN.findall(replayed)[:MAX_TOKENS]
    left: Segments = []
    right: Segments = []

    def add(side: Segments, op: str, tokens: list[str]) -> None:
        if not tokens:
            return
        if side and side[-1][0] == op:
            side[-1] = (op, side[-1][1] + "".join(tokens))
        else:
            side.append((op, "".join(tokens)))

    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            add(left, "equal", a[i1:i2])
            add(right, "equal", b[j1:j2])
        else:
            add(left, "delete", a[i1:i2])
            add(right, "insert", b[j1:j2])
    return left, right


def _value(source: Any, key: str) -> str:
    return str(source.get(key) or DEFAULTS.get(key, "")).strip()[:MAX_FIELD]


def replay_body(form: Any) -> dict[str, Any]:
    """The API's body of the form: the fields given, as typed (the API names a field it refuses)."""
    body: dict[str, Any] = {"from": _value(form, "from"), "rerun_llm": form.get("rerun_llm") == "on",
                            "rerun_tools": form.get("rerun_tools") == "on"}
    for key in ("conversation", "correlation", "since", "until", "model", "system_prompt"):
        if _value(form, key):
            body[key] = _value(form, key)
    limit = _value(form, "limit")
    body["limit"] = int(limit) if limit.isdigit() else limit
    return body


async def _form_page(ctx: Ctx, form: Any = None, status: int = 200, error: str | None = None) -> Response:
    models = await ctx.api.get("/models")
    choices = sorted({m["name"] for m in models} | {"echo"})
    source = form if form is not None else ctx.request.query_params
    values = {k: _value(source, k) for k in FIELDS}
    flags = {k: source.get(k) == "on" for k in ("rerun_llm", "rerun_tools")}
    return render(ctx, "replays.html", status=status, form=values, flags=flags, froms=FROMS, models=choices,
                  error=error)


async def replays_page(request: Request) -> Response:
    ctx = await session(request)
    wanted = request.query_params.get("run", "").strip()
    if wanted:  # "open a run": its page, or the form saying why not
        if RUN.match(wanted):
            return redirect(f"/replays/{wanted}?tenant={ctx.tenant}")
        return await _form_page(ctx, status=422, error=f"{ctx.t('replay.bad_run')} {wanted[:64]!r}")
    return await _form_page(ctx)


async def start(request: Request) -> Response:
    ctx = await session(request)
    form: FormData = await checked_form(request, ctx)
    try:
        out = await ctx.api.post(f"/tenants/{ctx.tenant}/replays", replay_body(form))
    except ApiError as err:
        if err.status == 401:
            raise
        return await _form_page(ctx, form=form, status=err.status, error=err.reason)
    return redirect(f"/replays/{out['run']}?tenant={ctx.tenant}")


def report_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for m in report.get("messages") or []:
        left, right = word_diff(m.get("original") or "", m.get("replayed") or "")
        rows.append({**m, "left": left, "right": right})
    return rows


async def _status(ctx: Ctx, run: str) -> dict[str, Any]:
    if not RUN.match(run):
        raise ApiError(422, f"path.run: not a replay run id {run[:64]!r}")
    status: dict[str, Any] = await ctx.api.get(f"/tenants/{ctx.tenant}/replays/{run}")
    if status["status"] == "done":
        status = await ctx.api.get(f"/tenants/{ctx.tenant}/replays/{run}/report")
    return status


async def run_page(request: Request) -> Response:
    ctx = await session(request)
    run = request.path_params["run"]
    status = await _status(ctx, run)
    return render(ctx, "replay_run.html", run=status, rows=report_rows(status))


async def run_status(request: Request) -> Response:
    """The polled part of the run page: its progress, and once done its report."""
    ctx = await session(request)
    status = await _status(ctx, request.path_params["run"])
    return render(ctx, "_replay_status.html", run=status, rows=report_rows(status))


routes = [
    Route("/replays", replays_page, methods=["GET"]),
    Route("/replays", start, methods=["POST"]),
    Route("/replays/{run}", run_page, methods=["GET"]),
    Route("/replays/{run}/status", run_status, methods=["GET"]),
]
