"""The Usage page: a tenant's answers, tokens and latency over time, per agent, from the API's
``GET /tenants/{t}/usage`` (the reasoner's inference ledger, per UTC hour or day), drawn as inline SVG
charts (``charts``) with the numbers in a table beside each.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentbus.services.ingress.console.apiclient import ApiError
from agentbus.services.ingress.console.charts import PALETTE, Chart, Drawn, Series, draw
from agentbus.services.ingress.console.web import Ctx, render, session

# the ranges offered: (key, bucket, span)
RANGES = {"24h": ("hour", timedelta(hours=24)), "7d": ("hour", timedelta(days=7)),
          "30d": ("day", timedelta(days=30)), "90d": ("day", timedelta(days=90))}
STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


def bucket_starts(bucket: str, since: datetime, until: datetime) -> list[datetime]:
    """Every bucket's first instant (UTC) from the one holding ``since`` to the one holding ``until``."""
    t = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if bucket == "day":
        t = t.replace(hour=0)
    out = []
    while t < until:
        out.append(t)
        t += STEP[bucket]
    return out


def _label(bucket: str, t: datetime) -> str:
    return t.strftime("%H:%M") if bucket == "hour" and t.hour else t.strftime("%m-%d")


def charts(ctx: Ctx, usage: dict[str, Any]) -> tuple[list[Chart], dict[str, int]]:
    """The three charts of the usage answer, and its totals."""
    bucket = usage["bucket"]
    starts = bucket_starts(bucket, datetime.fromisoformat(usage["since"]), datetime.fromisoformat(usage["until"]))
    index = {t: i for i, t in enumerate(starts)}
    labels = tuple(_label(bucket, t) for t in starts)
    n = len(starts)
    per_agent: dict[str, list[float | None]] = {a: [0.0] * n for a in usage["agents"]}
    all_rows: list[dict[str, Any] | None] = [None] * n
    for row in usage["items"]:
        i = index.get(datetime.fromisoformat(row["start"]).astimezone(UTC))
        if i is None:
            continue
        if row["agent"] is None:
            all_rows[i] = row
        elif row["agent"] in per_agent:
            per_agent[row["agent"]][i] = float(row["messages"])

    def column(key: str, empty: float | None) -> tuple[float | None, ...]:
        return tuple(float(r[key]) if r else empty for r in all_rows)

    messages = Chart("messages", ctx.t("usage.messages"), ctx.t("usage.unit.messages"), labels,
                     tuple(Series(a, tuple(v), f"s{k % PALETTE}") for k, (a, v) in enumerate(per_agent.items())))
    tokens = Chart("tokens", ctx.t("usage.tokens"), ctx.t("usage.unit.tokens"), labels,
                   (Series(ctx.t("usage.prompt_tokens"), column("prompt_tokens", 0.0), "s0"),
                    Series(ctx.t("usage.completion_tokens"), column("completion_tokens", 0.0), "s1")))
    latency = Chart("latency", ctx.t("usage.latency"), ctx.t("trace.ms"), labels,
                    (Series(ctx.t("usage.latency_avg"), column("latency_ms_avg", None), "s0"),
                     Series(ctx.t("usage.latency_p95"), column("latency_ms_p95", None), "s2")), kind="lines")
    totals = {k: sum(int(r[k]) for r in all_rows if r) for k in ("messages", "prompt_tokens", "completion_tokens")}
    return [messages, tokens, latency], totals


async def usage_page(request: Request) -> Response:
    ctx = await session(request)
    q = request.query_params
    chosen = q.get("range", "24h") if q.get("range", "24h") in RANGES else "24h"
    bucket, span = RANGES[chosen]
    agents = [a["id"] for a in await ctx.api.get(f"/tenants/{ctx.tenant}/agents")] if ctx.tenant else []
    agent = q.get("agent", "") if q.get("agent", "") in agents else ""
    until = datetime.now(UTC)
    status, error, usage = 200, None, None
    drawn: list[Drawn] = []
    totals: dict[str, int] = {}
    if ctx.tenant:
        try:
            usage = await ctx.api.get(f"/tenants/{ctx.tenant}/usage", bucket=bucket,
                                      since=(until - span).isoformat(), until=until.isoformat(), agent=agent)
        except ApiError as err:
            if err.status == 401:
                raise
            status, error = err.status, err.reason
    if usage is not None:
        made, totals = charts(ctx, usage)
        drawn = [draw(c) for c in made]
    return render(ctx, "usage.html", status=status, error=error, ranges=list(RANGES), chosen=chosen, agents=agents,
                  agent=agent, charts=drawn, totals=totals, usage=usage)


routes = [Route("/usage", usage_page, methods=["GET"])]
