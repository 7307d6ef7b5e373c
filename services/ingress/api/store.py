"""Tokens and the audit log in ingress's PostgreSQL schema; the ``agentbus tokens`` and ``agentbus audit``
commands use these same classes, so the command line and the API cannot disagree about a token."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import psycopg
import psycopg_pool
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from agentbus.db import columns
from agentbus.events import AuditRecorded
from agentbus.services.ingress.api.ports import AuditEntry, StoreUnavailable, TokenRecord

_COLS = "id, name, tenant, role, created_at, expires_at, revoked_at, last_used_at"


def _record(row: Sequence[Any]) -> TokenRecord:
    return TokenRecord(*row)


class _Pg:
    def __init__(self, pool: AsyncConnectionPool, db_timeout_s: float = 5.0) -> None:
        self._pool = pool
        self._timeout = db_timeout_s

    @asynccontextmanager
    async def _durable(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that waits for its WAL flush (ingress's pool does not by default: its de-duplication
        rows are an optimisation, tokens and audit entries are not)."""
        async with self._conn() as conn, conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit TO on")
            yield conn

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self._pool.connection(timeout=self._timeout) as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolTimeout) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}"[:300]) from exc


class PgTokenStore(_Pg):
    async def create(self, record: TokenRecord, token_hash: bytes) -> None:
        async with self._durable() as conn:
            await conn.execute(
                "INSERT INTO api_tokens (id, token_hash, name, tenant, role, created_at, expires_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (record.id, token_hash, record.name, record.tenant, record.role, record.created_at,
                 record.expires_at),
            )

    async def find(self, token_hash: bytes) -> TokenRecord | None:
        async with self._conn() as conn:
            cur = await conn.execute(f"SELECT {_COLS} FROM api_tokens WHERE token_hash = %s", (token_hash,))
            row = await cur.fetchone()
        return _record(row) if row else None

    async def touch(self, token_id: str) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE api_tokens SET last_used_at = now() WHERE id = %s "
                "AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds')", (token_id,))

    async def get(self, token_id: str) -> TokenRecord | None:
        async with self._conn() as conn:
            cur = await conn.execute(f"SELECT {_COLS} FROM api_tokens WHERE id = %s", (token_id,))
            row = await cur.fetchone()
        return _record(row) if row else None

    async def list(self, tenant: str | None = None) -> list[TokenRecord]:
        where, params = ("WHERE tenant = %s", (tenant,)) if tenant is not None else ("", ())
        async with self._conn() as conn:
            cur = await conn.execute(f"SELECT {_COLS} FROM api_tokens {where} ORDER BY created_at, id", params)
            return [_record(r) for r in await cur.fetchall()]

    async def revoke(self, token_id: str) -> bool:
        async with self._durable() as conn:
            cur = await conn.execute(
                "UPDATE api_tokens SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL", (token_id,))
            return cur.rowcount == 1

    async def delete(self, token_id: str) -> None:
        async with self._durable() as conn:
            await conn.execute("DELETE FROM api_tokens WHERE id = %s", (token_id,))


class PgAuditLog(_Pg):
    async def record(self, events: Sequence[AuditRecorded]) -> None:
        rows = [(e.id, e.data.at, e.data.actor, e.data.actor_name, e.data.tenant, e.data.action, e.data.target,
                 e.data.outcome, e.data.detail) for e in events]
        if not rows:
            return
        async with self._durable() as conn:
            await conn.execute(
                "INSERT INTO audit_log (event_id, at, actor, actor_name, tenant, action, target, outcome, detail) "
                "SELECT * FROM unnest(%b::uuid[], %b::timestamptz[], %b::text[], %b::text[], %b::text[], "
                "%b::text[], %b::text[], %b::text[], %b::text[]) ON CONFLICT (event_id) DO NOTHING",
                columns(rows, 9),
            )

    async def list(self, tenant: str | None, limit: int, before: datetime | None = None) -> list[AuditEntry]:
        conds: list[str] = []
        params: list[object] = []
        if tenant is not None:
            conds.append("tenant = %s")
            params.append(tenant)
        if before is not None:
            conds.append("at < %s")
            params.append(before)
        where = f"WHERE {' AND '.join(conds)}" if conds else ""
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT event_id::text, at, actor, actor_name, tenant, action, target, outcome, detail "
                f"FROM audit_log {where} ORDER BY at DESC, event_id DESC LIMIT %s", (*params, limit))
            return [AuditEntry(*r) for r in await cur.fetchall()]
