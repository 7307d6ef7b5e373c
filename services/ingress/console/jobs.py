"""The Jobs page: the tenant's jobs, a form to create one (with a cron builder whose next five due times an
htmx preview computes exactly as the scheduler will), and pause, resume and cancel.

Writes are the API's ``job.requested`` commands: answered 202, applied by the scheduler a moment later, so
the page says "requested" and the list shows the new state once the scheduler has it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentbus.schedules import ScheduleError, check_schedule, first_due, next_due
from agentbus.services.ingress.console.apiclient import ApiError
from agentbus.services.ingress.console.web import Ctx, checked_form, redirect, render, session

CRON_FIELDS = ("minute", "hour", "dom", "month", "dow")
DEFAULTS = {"kind": "cron", "minute": "0", "hour": "9", "dom": "*", "month": "*", "dow": "1-5",
            "timezone": "UTC", "every_s": "3600", "at": "", "chat_type": "group"}
ACTIONS = ("pause", "resume", "cancel")
MAX_FIELD = 200


def _value(source: Any, key: str) -> str:
    return str(source.get(key) or DEFAULTS.get(key, "")).strip()[:MAX_FIELD]


def schedule(source: Any) -> tuple[str, str, str]:
    """(kind, expression, time zone) of the builder's fields."""
    kind = _value(source, "kind")
    if kind == "cron":
        expr = " ".join(_value(source, f) or "*" for f in CRON_FIELDS)
    elif kind == "every":
        expr = _value(source, "every_s")
    else:
        expr = _value(source, "at")
    return kind, expr, _value(source, "timezone")


def due_times(kind: str, expr: str, tz: str, now: datetime, count: int = 5) -> list[datetime]:
    """The next ``count`` due times (local to ``tz``), as the scheduler computes them."""
    check_schedule(kind, expr, tz)
    out: list[datetime] = []
    due = first_due(kind, expr, tz, now)
    while due is not None and len(out) < count:
        out.append(due.astimezone(ZoneInfo(tz)))
        due = next_due(kind, expr, tz, due)
    return out


async def _page(ctx: Ctx, status: int = 200, form: Any = None, error: str | None = None,
                notice: dict[str, str] | None = None) -> Response:
    jobs = await ctx.api.get(f"/tenants/{ctx.tenant}/jobs") if ctx.tenant else []
    channels = await ctx.api.get(f"/tenants/{ctx.tenant}/channels") if ctx.tenant else []
    values = {k: _value(form or {}, k) for k in (*DEFAULTS, "id", "channel", "chat", "prompt")}
    return render(ctx, "jobs.html", status=status, jobs=jobs, channels=[c["id"] for c in channels],
                  form=values, error=error, notice=notice, cron_fields=CRON_FIELDS, actions=ACTIONS)


async def jobs_page(request: Request) -> Response:
    ctx = await session(request)
    q = request.query_params
    notice = {"action": q["requested"], "job": q.get("job", "")} if q.get("requested") in (*ACTIONS, "create") \
        else None
    return await _page(ctx, notice=notice)


async def preview(request: Request) -> Response:
    ctx = await session(request)
    kind, expr, tz = schedule(request.query_params)
    try:
        times = due_times(kind, expr, tz, datetime.now(UTC))
        error = None
    except (ScheduleError, ValueError, OverflowError) as err:
        times, error = [], str(err)
    return render(ctx, "_cron_preview.html", kind=kind, expr=expr, tz=tz, times=times, error=error)


def _body(form: FormData) -> dict[str, Any]:
    kind, expr, tz = schedule(form)
    body: dict[str, Any] = {"channel": _value(form, "channel"), "chat": _value(form, "chat"),
                            "chat_type": _value(form, "chat_type"), "prompt": str(form.get("prompt") or ""),
                            "timezone": tz}
    if _value(form, "id"):
        body["id"] = _value(form, "id")
    if kind == "every":
        try:
            body["every_s"] = float(expr)
        except ValueError:
            body["every_s"] = expr  # the API names the field in its refusal
    else:
        body[kind if kind in ("cron", "at") else "cron"] = expr
    return body


async def create(request: Request) -> Response:
    ctx = await session(request)
    form = await checked_form(request, ctx)
    try:
        out = await ctx.api.post(f"/tenants/{ctx.tenant}/jobs", _body(form))
    except ApiError as err:
        if err.status == 401:
            raise
        return await _page(ctx, status=err.status, form=form, error=err.reason)
    return redirect(f"/jobs?tenant={ctx.tenant}&requested=create&job={out['job_id']}")


async def change(request: Request) -> Response:
    ctx = await session(request)
    await checked_form(request, ctx)
    job, action = request.path_params["job"], request.path_params["action"]
    if action not in ACTIONS:
        return await _page(ctx, status=404, error=f"no action {action[:20]!r}")
    try:
        await ctx.api.post(f"/tenants/{ctx.tenant}/jobs/{job}/{action}")
    except ApiError as err:
        if err.status == 401:
            raise
        return await _page(ctx, status=err.status, error=err.reason)
    return redirect(f"/jobs?tenant={ctx.tenant}&requested={action}&job={job}")


routes = [
    Route("/jobs", jobs_page, methods=["GET"]),
    Route("/jobs", create, methods=["POST"]),
    Route("/jobs/preview", preview, methods=["GET"]),
    Route("/jobs/{job}/{action}", change, methods=["POST"]),
]
