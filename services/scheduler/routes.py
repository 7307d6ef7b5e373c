"""The scheduler's admin endpoint ``GET /v1/jobs``: the jobs of a tenant, channel or chat, with their state.

Operators read it, ``agentbus jobs list`` prints it, and the reasoner's schedule tool reads it to list the
jobs of the asker's conversation. It only reads; every change to a job is a ``job.requested`` command.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agentbus.http import error
from agentbus.services.scheduler.ports import JobFilter, JobStore, JobView

FILTERS = ("tenant", "channel", "chat")
_VALUE = re.compile(r"^[^\x00-\x1f]{1,256}$")  # printable, bounded: a filter is an id, never a pattern


def parse_filter(query: dict[str, list[str]]) -> JobFilter | str:
    """The filter of a query string, or the reason it is refused."""
    unknown = sorted(set(query) - set(FILTERS))
    if unknown:
        return f"unknown query parameter {unknown[0][:40]!r} (allowed: {', '.join(FILTERS)})"
    values: dict[str, str] = {}
    for name, given in query.items():
        if len(given) != 1:
            return f"{name}: give it once"
        if not _VALUE.match(given[0]):
            return f"{name}: must be 1 to 256 printable characters"
        values[name] = given[0]
    return JobFilter(**values)


def _iso(d: datetime | None) -> str | None:
    return d.isoformat() if d is not None else None


def job_json(v: JobView) -> dict[str, Any]:
    s = v.spec
    iso = _iso
    return {
        "job_id": s.job_id, "state": v.state, "source": s.source,
        "schedule": {"kind": s.kind, "expr": s.expr, "timezone": s.timezone},
        "timezone": s.timezone, "next_due": iso(v.next_due),
        "tenant": s.tenant, "channel": s.channel, "chat": {"id": s.chat_id, "type": s.chat_type},
        "agent": s.agent, "prompt": s.prompt, "requested_by": v.requested_by,
        "paused_at": iso(v.paused_at), "cancelled_at": iso(v.cancelled_at), "updated_at": iso(v.updated_at),
    }


def job_routes(store: JobStore) -> list[BaseRoute]:
    async def jobs(request: Request) -> Response:
        query: dict[str, list[str]] = {}
        for k, v in request.query_params.multi_items():
            query.setdefault(k, []).append(v)
        where = parse_filter(query)
        if isinstance(where, str):
            return error(400, where)
        return JSONResponse({"jobs": [job_json(v) for v in await store.list_jobs(where)]})

    return [Route("/v1/jobs", jobs, methods=["GET"])]
