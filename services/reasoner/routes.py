"""The reasoner's admin listing of its inference ledger, which the operator API shows:
``GET /v1/inferences?tenant=&conversation=&correlation=``, newest first; and its usage over time,
``GET /v1/usage?tenant=&bucket=hour|day&since=&until=&agent=``: answers, tokens and latency per bucket and
agent, and for all agents together (``agent`` null), aggregated in PostgreSQL.

Each row is one finished inference: the model that answered (and the chain tried before it), tokens,
latency, how it finished. Neither the prompt nor the answer is listed: the conversation's turns show what
was said, to those allowed to read them. Inferences recorded before the ledger kept their tenant are not
listed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agentbus.adminreads import BadQuery, decode_cursor, encode_cursor, limit_of, page, query_of
from agentbus.http import error

_COLUMNS = ("input_event_id", "correlation_id", "conversation", "agent", "model", "provider", "models_tried",
            "attempts", "prompt_tokens", "completion_tokens", "finish_reason", "latency_ms", "created_at")


@dataclass(frozen=True)
class InferenceQuery:
    tenant: str
    conversation: str | None = None
    correlation: uuid.UUID | None = None
    before: tuple[datetime, uuid.UUID] | None = None


@dataclass(frozen=True)
class UsageQuery:
    tenant: str
    bucket: str  # hour or day (UTC)
    since: datetime
    until: datetime
    agent: str | None = None


MAX_BUCKETS = {"hour": 24 * 31, "day": 366}
_USAGE = ("bucket", "agent", "messages", "prompt_tokens", "completion_tokens", "latency_ms_avg", "latency_ms_p95")


class Inferences(Protocol):
    async def inferences(self, q: InferenceQuery, limit: int) -> list[dict[str, Any]]: ...

    async def usage(self, q: UsageQuery) -> list[dict[str, Any]]:
        """Per bucket (UTC) and agent, and per bucket for all agents (agent None): answers, tokens, latency."""
        ...


class PgInferences:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def inferences(self, q: InferenceQuery, limit: int) -> list[dict[str, Any]]:
        where: list[str] = ["tenant = %s"]
        args: list[object] = [q.tenant]
        for column, value in (("conversation", q.conversation), ("correlation_id", q.correlation)):
            if value is not None:
                where.append(f"{column} = %s")
                args.append(value)
        if q.before is not None:
            where.append("(created_at, input_event_id) < (%s, %s)")
            args += list(q.before)
        sql = (f"SELECT {', '.join(_COLUMNS)} FROM inferences WHERE {' AND '.join(where)} "  # noqa: S608 - fixed names
               "ORDER BY created_at DESC, input_event_id DESC LIMIT %s")
        async with self._pool.connection() as conn:
            cur = await conn.execute(sql, (*args, limit))
            return [dict(zip(_COLUMNS, r, strict=True)) for r in await cur.fetchall()]


    async def usage(self, q: UsageQuery) -> list[dict[str, Any]]:
        sql = ("SELECT date_trunc(%s, created_at, 'UTC'), agent, count(*), coalesce(sum(prompt_tokens), 0), "
               "coalesce(sum(completion_tokens), 0), avg(latency_ms), "
               "percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) FROM inferences "
               "WHERE tenant = %s AND created_at >= %s AND created_at < %s AND (%s::text IS NULL OR agent = %s) "
               "GROUP BY GROUPING SETS ((1, 2), (1)) ORDER BY 1, 2 NULLS FIRST")
        async with self._pool.connection() as conn:
            cur = await conn.execute(sql, (q.bucket, q.tenant, q.since, q.until, q.agent, q.agent))
            return [dict(zip(_USAGE, r, strict=True)) for r in await cur.fetchall()]


def _instant(q: dict[str, str], name: str) -> datetime | None:
    if name not in q:
        return None
    try:
        t = datetime.fromisoformat(q[name])
    except ValueError:
        raise BadQuery(f"{name}: not an ISO 8601 time") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def parse_usage(q: dict[str, str]) -> UsageQuery:
    bucket = q.get("bucket", "hour")
    if bucket not in MAX_BUCKETS:
        raise BadQuery("bucket: hour or day")
    until = _instant(q, "until") or datetime.now(UTC)
    since = _instant(q, "since") or until - (timedelta(hours=24) if bucket == "hour" else timedelta(days=30))
    if since >= until:
        raise BadQuery("since: must be before until")
    span = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    if (until - since) / span > MAX_BUCKETS[bucket]:
        raise BadQuery(f"since: at most {MAX_BUCKETS[bucket]} {bucket}s before until")
    return UsageQuery(q["tenant"], bucket, since, until, q.get("agent"))


def usage_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"start": row["bucket"].isoformat(), "agent": row["agent"], "messages": int(row["messages"]),
            "prompt_tokens": int(row["prompt_tokens"]), "completion_tokens": int(row["completion_tokens"]),
            "latency_ms_avg": round(float(row["latency_ms_avg"]), 1),
            "latency_ms_p95": round(float(row["latency_ms_p95"]), 1)}


def parse_query(q: dict[str, str]) -> InferenceQuery:
    correlation = None
    if "correlation" in q:
        try:
            correlation = uuid.UUID(q["correlation"])
        except ValueError:
            raise BadQuery("correlation: not a UUID") from None
    before = None
    if "before" in q:
        at, input_id = decode_cursor(q["before"], 2)
        try:
            before = (datetime.fromisoformat(at), uuid.UUID(input_id))
        except ValueError:
            raise BadQuery("before: not a cursor this listing made") from None
    return InferenceQuery(q["tenant"], q.get("conversation"), correlation, before)


def inference_json(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["input_event_id"], out["correlation_id"] = str(row["input_event_id"]), str(row["correlation_id"])
    out["models_tried"] = list(row["models_tried"])
    out["latency_ms"] = round(float(row["latency_ms"]), 1)
    out["created_at"] = row["created_at"].isoformat()
    # an inference is recorded once it finished; the chain tried before it tells a fallback from a first answer
    out["outcome"] = ("truncated" if row["finish_reason"] == "length"
                      else "fallback" if len(out["models_tried"]) > 1 else "ok")
    return out


def inference_routes(ledger: Inferences) -> list[BaseRoute]:
    async def inferences(request: Request) -> Response:
        try:
            q = query_of(request, ("tenant", "conversation", "correlation", "limit", "before"))
            limit, where = limit_of(q), parse_query(q)
        except BadQuery as why:
            return error(400, str(why))
        rows = await ledger.inferences(where, limit + 1)
        return JSONResponse(page(rows, limit, inference_json,
                                 lambda r: encode_cursor(r["created_at"].isoformat(), str(r["input_event_id"]))))

    async def usage(request: Request) -> Response:
        try:
            where = parse_usage(query_of(request, ("tenant", "bucket", "since", "until", "agent")))
        except BadQuery as why:
            return error(400, str(why))
        rows = await ledger.usage(where)
        return JSONResponse({"items": [usage_json(r) for r in rows], "next_before": None,
                             "bucket": where.bucket, "since": where.since.isoformat(),
                             "until": where.until.isoformat()})

    return [Route("/v1/inferences", inferences, methods=["GET"]), Route("/v1/usage", usage, methods=["GET"])]
