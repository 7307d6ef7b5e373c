"""A tenant's usage over time: answers, tokens and latency per hour or day and agent, aggregated by the
reasoner from its inference ledger (``GET /v1/usage`` on its admin HTTP), which records each finished answer
once (a redelivered or replayed input reuses its row).

Buckets are UTC hours or days. Every agent's rows come with an ``agent: null`` row per bucket for all of
them together, so latency percentiles are computed over all answers, not averaged from the agents'.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Depends, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from agentbus.services.ingress.api.app import Access, allow
from agentbus.services.ingress.api.config_routes import TenantPath
from agentbus.services.ingress.api.history_routes import _answer, _reads

router = APIRouter(tags=["usage"])
Bucket = Literal["hour", "day"]
MAX_BUCKETS = {"hour": 24 * 31, "day": 366}
DEFAULT_SPAN = {"hour": timedelta(hours=24), "day": timedelta(days=30)}
STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


class UsageBucket(BaseModel):
    start: datetime = Field(description="the bucket's first instant (UTC)")
    agent: str | None = Field(description="null: every agent of the tenant together")
    messages: int = Field(description="answers the agent gave (finished inferences)")
    prompt_tokens: int
    completion_tokens: int
    latency_ms_avg: float
    latency_ms_p95: float


class UsageOut(BaseModel):
    bucket: Bucket
    since: datetime
    until: datetime
    agents: list[str] = Field(description="the agents with answers in the window")
    items: list[UsageBucket] = Field(description="buckets with answers only, oldest first")


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _refuse(field: str, msg: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", field), "msg": msg, "type": "value_error"}])


@router.get("/tenants/{tenant}/usage", name="usage.get", response_model=UsageOut)
async def usage(tenant: TenantPath, access: Access = Depends(allow("viewer")), bucket: Bucket = "hour",
                since: datetime | None = Query(default=None, description="default: a day (hour) or 30 days (day) "
                                                                         "before until"),
                until: datetime | None = Query(default=None, description="default: now"),
                agent: str | None = Query(default=None, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
                ) -> UsageOut:
    end = _utc(until) if until else datetime.now(UTC)
    try:
        start = _utc(since) if since else end - DEFAULT_SPAN[bucket]
    except OverflowError:  # an until at the very start of the calendar
        raise _refuse("until", "too early") from None
    if start >= end:
        raise _refuse("since", "must be before until")
    if (end - start) / STEP[bucket] > MAX_BUCKETS[bucket]:
        raise _refuse("since", f"at most {MAX_BUCKETS[bucket]} {bucket}s before until")
    params = {"bucket": bucket, "since": start.isoformat(), "until": end.isoformat()}
    if agent:
        params["agent"] = agent
    page = await _answer(_reads(access).inferences.usage(tenant, params))
    items = [UsageBucket(**i) for i in page["items"]]
    return UsageOut(bucket=bucket, since=start, until=end, items=items,
                    agents=sorted({i.agent for i in items if i.agent is not None}))
