"""Egress's admin listing of its delivery ledger, which the operator API shows:
``GET /v1/deliveries?tenant=&conversation=&status=&correlation=``, newest claim first.

Read-only: a delivery is only ever changed by pushing a reply. Deliveries recorded before the ledger kept
their tenant are not listed (they name no tenant to scope them by).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agentbus.adminreads import BadQuery, decode_cursor, encode_cursor, limit_of, page, query_of
from agentbus.http import error

STATUSES = ("pushing", "pending", "delivered", "failed", "suppressed")
_COLUMNS = ("reply_id", "correlation_id", "conversation", "channel", "channel_type", "target", "status",
            "attempts", "http_status", "error", "platform_message_id", "claimed_at", "finished_at")


@dataclass(frozen=True)
class DeliveryQuery:
    tenant: str
    conversation: str | None = None
    status: str | None = None
    correlation: uuid.UUID | None = None
    before: tuple[datetime, uuid.UUID] | None = None


class Deliveries(Protocol):
    async def deliveries(self, q: DeliveryQuery, limit: int) -> list[dict[str, Any]]:
        """Rows of ``_COLUMNS``, newest claim first, older than ``q.before``."""
        ...


class PgDeliveries:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def deliveries(self, q: DeliveryQuery, limit: int) -> list[dict[str, Any]]:
        where: list[str] = ["tenant = %s"]
        args: list[object] = [q.tenant]
        for column, value in (("conversation", q.conversation), ("status", q.status),
                              ("correlation_id", q.correlation)):
            if value is not None:
                where.append(f"{column} = %s")
                args.append(value)
        if q.before is not None:
            where.append("(claimed_at, reply_id) < (%s, %s)")
            args += list(q.before)
        sql = (f"SELECT {', '.join(_COLUMNS)} FROM deliveries WHERE {' AND '.join(where)} "  # noqa: S608 - fixed names
               "ORDER BY claimed_at DESC, reply_id DESC LIMIT %s")
        async with self._pool.connection() as conn:
            cur = await conn.execute(sql, (*args, limit))
            return [dict(zip(_COLUMNS, r, strict=True)) for r in await cur.fetchall()]


def parse_query(q: dict[str, str]) -> DeliveryQuery:
    status = q.get("status")
    if status is not None and status not in STATUSES:
        raise BadQuery(f"status: one of {', '.join(STATUSES)}")
    correlation = None
    if "correlation" in q:
        try:
            correlation = uuid.UUID(q["correlation"])
        except ValueError:
            raise BadQuery("correlation: not a UUID") from None
    before = None
    if "before" in q:
        at, reply = decode_cursor(q["before"], 2)
        try:
            before = (datetime.fromisoformat(at), uuid.UUID(reply))
        except ValueError:
            raise BadQuery("before: not a cursor this listing made") from None
    return DeliveryQuery(q["tenant"], q.get("conversation"), status, correlation, before)


def delivery_json(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for k in ("reply_id", "correlation_id"):
        out[k] = str(out[k])
    for k in ("claimed_at", "finished_at"):
        out[k] = out[k].isoformat() if out[k] is not None else None
    return out


def delivery_routes(ledger: Deliveries) -> list[BaseRoute]:
    async def deliveries(request: Request) -> Response:
        try:
            q = query_of(request, ("tenant", "conversation", "status", "correlation", "limit", "before"))
            limit, where = limit_of(q), parse_query(q)
        except BadQuery as why:
            return error(400, str(why))
        rows = await ledger.deliveries(where, limit + 1)
        return JSONResponse(page(rows, limit, delivery_json,
                                 lambda r: encode_cursor(r["claimed_at"].isoformat(), str(r["reply_id"]))))

    return [Route("/v1/deliveries", deliveries, methods=["GET"])]
