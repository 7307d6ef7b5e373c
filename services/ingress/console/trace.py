"""The Trace page: the causal chain of one message as a waterfall (received, context, each LLM and tool step,
reply, delivery) with the timings, model, tokens and outcome of each step, read from the operator API's
``GET /tenants/{t}/messages/{correlation_id}/trace``, and a link to the trace viewer when one is configured
(``AGENTBUS_JAEGER_URL``: ``{url}/trace/{trace_id}``).

Events are instants; a step's bar ends when its event occurred and starts at the event that caused it, or,
for an LLM call, a tool call or a push, ``latency_ms`` before (what the service measured itself). Bars are
inline SVG: the CSP allows no inline style.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentbus.services.ingress.console import i18n
from agentbus.services.ingress.console.apiclient import ApiError
from agentbus.services.ingress.console.web import Ctx, render, session

WINDOWS = ("1", "24", "168")  # hours back the trace is looked for
MEASURED = {"inference.completed", "tool.called", "delivery.completed"}  # data.latency_ms is the step's own time
BAR_WIDTH = 1000.0


@dataclass(frozen=True)
class Step:
    id: str
    type: str
    source: str
    start_ms: float
    duration_ms: float
    model: str | None
    tokens: tuple[int | None, int | None] | None
    outcome: str | None
    summary: str
    replay_run: str | None
    at: str

    def bar(self, total_ms: float) -> tuple[float, float]:
        """(x, width) of the step's bar in a ``BAR_WIDTH`` wide box; at least a sliver, so every step shows."""
        scale = BAR_WIDTH / total_ms if total_ms > 0 else 0.0
        x = min(self.start_ms * scale, BAR_WIDTH - 2)
        return round(x, 1), round(max(self.duration_ms * scale, 2.0), 1)


def _at(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _outcome(kind: str, data: dict[str, Any]) -> str | None:
    if kind in ("inference.completed", "tool.called"):
        return str(data.get("outcome") or "ok")
    if kind == "delivery.completed":
        return str(data.get("status"))
    if kind == "dead.lettered":
        return "failed"
    return None


def _model(kind: str, data: dict[str, Any]) -> str | None:
    if kind in ("inference.completed", "reply.generated"):
        return str(data.get("model") or "") or None
    if kind == "tool.called":
        return str(data.get("tool") or "") or None
    return None


def _tokens(kind: str, data: dict[str, Any]) -> tuple[int | None, int | None] | None:
    if kind != "inference.completed":
        return None
    usage = data.get("usage") or {}
    return usage.get("input_tokens"), usage.get("output_tokens")


def waterfall(events: list[dict[str, Any]]) -> tuple[list[Step], float]:
    """The steps of a trace (the API's events, in order) with their offsets from the first, and the total."""
    if not events:
        return [], 0.0
    times = {e["id"]: _at(e["occurred_at"]) for e in events}
    received = [_at(e["data"]["received_at"]) for e in events
                if e["type"] == "message.received" and (e.get("data") or {}).get("received_at")]
    origin = min([*times.values(), *received])  # the chain starts when ingress had the message
    steps = []
    for e in events:
        end = times[e["id"]]
        data = e.get("data") or {}
        kind = e["type"]
        cause = times.get(e.get("causation_id") or "")
        if kind in MEASURED and data.get("latency_ms") is not None:
            duration = float(data["latency_ms"])
        elif cause is not None:
            duration = (end - cause).total_seconds() * 1000
        elif kind == "message.received" and data.get("received_at"):
            duration = (end - _at(data["received_at"])).total_seconds() * 1000
        else:
            duration = 0.0
        end_ms = (end - origin).total_seconds() * 1000
        duration = max(0.0, min(duration, end_ms))  # a step starts within the chain
        steps.append(Step(id=e["id"], type=kind, source=e.get("source", ""), start_ms=max(0.0, end_ms - duration),
                          duration_ms=duration, model=_model(kind, data), tokens=_tokens(kind, data),
                          outcome=_outcome(kind, data), summary=e.get("summary", ""),
                          replay_run=e.get("replay_run"), at=end.strftime("%H:%M:%S.%f")[:-3]))
    total = max((s.start_ms + s.duration_ms for s in steps), default=0.0)
    return steps, total


def jaeger_links(base: str | None, trace_ids: list[str]) -> list[tuple[str, str]]:
    """(trace id, its page in the trace viewer) for each trace id, when a viewer is configured."""
    if not base:
        return []
    return [(tid, f"{base.rstrip('/')}/trace/{tid}") for tid in trace_ids]


def known(ctx: Ctx, key: str, fallback: str) -> str:
    """The catalogue's words for ``key``, or ``fallback`` (data, such as an event type we have no name for)."""
    return ctx.t(key) if key in i18n.EN else fallback


async def _page(ctx: Ctx, correlation: str, window: str, error: str | None = None, status: int = 200) -> Response:
    body = None
    if correlation and error is None:
        try:
            body = await ctx.api.get(f"/tenants/{ctx.tenant}/messages/{correlation}/trace", window_h=window)
        except ApiError as err:
            if err.status == 401:
                raise
            error, status = err.reason, err.status
    steps, total = waterfall(body["events"]) if body else ([], 0.0)
    links = jaeger_links(ctx.console.settings.jaeger_url, body["trace_ids"]) if body else []
    return render(ctx, "trace.html", status=status, correlation=correlation, window=window, windows=WINDOWS,
                  trace=body, steps=steps, total=total, links=links, error=error, width=BAR_WIDTH,
                  known=lambda key, fallback: known(ctx, key, fallback))


def _window(request: Request) -> str:
    w = request.query_params.get("window_h", "24")
    return w if w in WINDOWS else "24"


async def lookup(request: Request) -> Response:
    """The form's answer: the trace of the id typed in (a malformed id is said so, the API not asked)."""
    ctx = await session(request)
    given = request.query_params.get("correlation", "").strip()[:100]
    try:
        given = str(uuid.UUID(given)) if given else ""
    except ValueError:
        return await _page(ctx, given, _window(request), error=ctx.t("trace.bad_id"), status=422)
    return await _page(ctx, given, _window(request))


async def trace_page(request: Request) -> Response:
    ctx = await session(request)
    return await _page(ctx, request.path_params["correlation"][:100], _window(request))


routes = [Route("/trace", lookup, methods=["GET"]), Route("/trace/{correlation}", trace_page, methods=["GET"])]
