"""Memory's admin listings of conversation history, which the operator API shows:
``GET /v1/conversations?tenant=`` and ``GET /v1/conversations/{conversation}/turns?tenant=``.

Read-only and tenant-scoped: a conversation key names its tenant first (``tenant/channel/chat``), and a key
of another tenant is answered 404 like one that does not exist. Pages are newest first; the cursor is the
turn sequence number, so a page never repeats or skips a turn however many share a timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agentbus.adminreads import BadQuery, decode_cursor, encode_cursor, limit_of, page, query_of
from agentbus.http import error
from agentbus.ids import ConversationKey


@dataclass(frozen=True)
class ConversationRow:
    key: str
    turns: int
    first_at: datetime
    last_at: datetime
    last_seq: int


@dataclass(frozen=True)
class TurnRow:
    event_id: str
    role: str
    sender: str | None
    text: str
    at: datetime
    correlation_id: str | None
    attachments: list[dict[str, Any]]
    seq: int


class History(Protocol):
    async def conversations(self, tenant: str, limit: int, before_seq: int | None) -> list[ConversationRow]:
        """The tenant's conversations by last activity, newest first, those last active before the cursor."""
        ...

    async def turns(self, tenant: str, conversation: str, limit: int, before_seq: int | None) -> list[TurnRow]:
        """The conversation's turns, newest first."""
        ...

    async def exists(self, tenant: str, conversation: str) -> bool: ...


class PgHistory:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def conversations(self, tenant: str, limit: int, before_seq: int | None) -> list[ConversationRow]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT conversation, count(*), min(at), max(at), max(seq) FROM turns WHERE tenant = %s "
                "GROUP BY conversation HAVING max(seq) < coalesce(%s, 9223372036854775807) "
                "ORDER BY max(seq) DESC LIMIT %s",
                (tenant, before_seq, limit),
            )
            return [ConversationRow(*r) for r in await cur.fetchall()]

    async def turns(self, tenant: str, conversation: str, limit: int, before_seq: int | None) -> list[TurnRow]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT event_id::text, role, sender, text, at, correlation_id::text, attachments, seq FROM turns "
                "WHERE tenant = %s AND conversation = %s AND seq < coalesce(%s, 9223372036854775807) "
                "ORDER BY seq DESC LIMIT %s",
                (tenant, conversation, before_seq, limit),
            )
            return [TurnRow(*r) for r in await cur.fetchall()]

    async def exists(self, tenant: str, conversation: str) -> bool:
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT 1 FROM turns WHERE tenant = %s AND conversation = %s LIMIT 1",
                                     (tenant, conversation))
            return await cur.fetchone() is not None


def _seq(values: dict[str, str]) -> int | None:
    if "before" not in values:
        return None
    [raw] = decode_cursor(values["before"], 1)
    if not raw.isdigit():
        raise BadQuery("before: not a cursor this listing made")
    return int(raw)


def conversation_json(r: ConversationRow) -> dict[str, Any]:
    key = ConversationKey.parse(r.key)
    return {"conversation": r.key, "channel": key.channel, "chat": key.chat, "turns": r.turns,
            "first_at": r.first_at.isoformat(), "last_at": r.last_at.isoformat()}


def turn_json(r: TurnRow) -> dict[str, Any]:
    return {"event_id": r.event_id, "role": r.role, "sender": r.sender, "text": r.text, "at": r.at.isoformat(),
            "correlation_id": r.correlation_id, "attachments": r.attachments}


def history_routes(history: History) -> list[BaseRoute]:
    async def conversations(request: Request) -> Response:
        try:
            q = query_of(request, ("tenant", "limit", "before"))
            limit, before = limit_of(q), _seq(q)
        except BadQuery as why:
            return error(400, str(why))
        rows = await history.conversations(q["tenant"], limit + 1, before)
        return JSONResponse(page(rows, limit, conversation_json, lambda r: encode_cursor(str(r.last_seq))))

    async def turns(request: Request) -> Response:
        conversation: str = request.path_params["conversation"]
        try:
            q = query_of(request, ("tenant", "limit", "before"))
            limit, before = limit_of(q), _seq(q)
        except BadQuery as why:
            return error(400, str(why))
        tenant = q["tenant"]
        if not conversation.startswith(tenant + "/") or not await history.exists(tenant, conversation):
            return error(404, f"no conversation {conversation[:200]!r} of tenant {tenant[:64]!r}")
        rows = await history.turns(tenant, conversation, limit + 1, before)
        return JSONResponse(page(rows, limit, turn_json, lambda r: encode_cursor(str(r.seq))))

    return [Route("/v1/conversations", conversations, methods=["GET"]),
            Route("/v1/conversations/{conversation:path}/turns", turns, methods=["GET"])]
