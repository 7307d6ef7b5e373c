"""Ingress's de-duplication table in PostgreSQL (schema ``ingress``).

The look-ups and records of webhooks handled at the same moment share one statement each, and every
statement waits for a connection at most ``db_timeout_s``: a slow database delays no webhook for longer.
"""

from __future__ import annotations

import uuid

import psycopg
import psycopg_pool
from psycopg_pool import AsyncConnectionPool

from agentbus.db import coalesced, columns
from agentbus.services.ingress.ports import DedupeUnavailable


class PgDedupe:
    def __init__(self, pool: AsyncConnectionPool, db_timeout_s: float = 2.0) -> None:
        self._pool = pool
        self._db_timeout_s = db_timeout_s
        self._seen = coalesced(self._seen_many)
        self._record = coalesced(self._record_many)

    async def aclose(self) -> None:
        await self._seen.aclose()
        await self._record.aclose()

    async def seen(self, channel: str, dedupe_id: str) -> bool:
        try:
            return await self._seen((channel, dedupe_id))
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise DedupeUnavailable(str(exc)) from exc

    async def record(self, channel: str, dedupe_id: str, event_id: uuid.UUID) -> None:
        try:
            await self._record((channel, dedupe_id, event_id))
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise DedupeUnavailable(str(exc)) from exc

    async def _seen_many(self, keys: list[tuple[str, str]]) -> list[bool]:
        async with self._pool.connection(timeout=self._db_timeout_s) as conn:
            cur = await conn.execute(
                "SELECT d.channel, d.dedupe_id FROM inbound_dedupe d "
                "JOIN unnest(%b::text[], %b::text[]) AS q(c, i) ON d.channel = q.c AND d.dedupe_id = q.i",
                columns(keys, 2),
            )
            seen = {(r[0], r[1]) for r in await cur.fetchall()}
        return [k in seen for k in keys]

    async def _record_many(self, rows: list[tuple[str, str, uuid.UUID]]) -> list[None]:
        async with self._pool.connection(timeout=self._db_timeout_s) as conn:
            await conn.execute(
                "INSERT INTO inbound_dedupe (channel, dedupe_id, event_id) "
                "SELECT * FROM unnest(%b::text[], %b::text[], %b::uuid[]) ON CONFLICT DO NOTHING",
                columns(rows, 3),
            )
        return [None] * len(rows)
