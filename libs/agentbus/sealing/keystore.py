"""The people's data keys in PostgreSQL (schema ``keyring``), shared by every service.

Like the blob store this breaks the rule of one schema per service, for the same reason: a key is made once
per person by whichever service first seals their text (ingress, mostly), is never changed, and is only ever
deleted, when the person is forgotten. No service can make another see a different key for the same id.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from agentbus.sealing.envelope import DataKey
from agentbus.sealing.keyring import Keyring

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

    from agentbus.settings import Settings

SCHEMA = "keyring"
MIGRATIONS = Path(__file__).parent / "migrations"


class PgKeyStore:
    """The ``KeyStore`` port over ``user_keys`` (and ``forgotten_keys``, what was deleted)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def key_for(self, tenant: str, user: str) -> DataKey:
        async with self._pool.connection() as conn:
            for _ in range(3):  # a key made by another process between the two statements is read the next time
                row = await (await conn.execute(
                    "SELECT kid, secret FROM user_keys WHERE tenant = %s AND user_id = %s",
                    (tenant, user.encode()),
                )).fetchone()
                if row is not None:
                    return DataKey(row[0], tenant, user, bytes(row[1]))
                made = await (await conn.execute(
                    "INSERT INTO user_keys (kid, tenant, user_id, secret) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (tenant, user_id) DO NOTHING RETURNING kid, secret",
                    (uuid.uuid4().hex, tenant, user.encode(), os.urandom(32)),
                )).fetchone()
                if made is not None:
                    return DataKey(made[0], tenant, user, bytes(made[1]))
        raise RuntimeError("no key could be read or made")  # pragma: no cover - a row that keeps vanishing

    async def keys(self, kids: Collection[str]) -> dict[str, DataKey]:
        if not kids:
            return {}
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(
                "SELECT kid, tenant, user_id, secret FROM user_keys WHERE kid = ANY(%s)", (list(kids),),
            )).fetchall()
        return {r[0]: DataKey(r[0], r[1], bytes(r[2]).decode(), bytes(r[3])) for r in rows}

    async def forget(self, tenant: str, user: str) -> list[str]:
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(
                "WITH gone AS (DELETE FROM user_keys WHERE tenant = %s AND user_id = %s "
                "RETURNING kid, tenant, user_id) INSERT INTO forgotten_keys (kid, tenant, user_id) "
                "SELECT kid, tenant, user_id FROM gone ON CONFLICT (kid) DO NOTHING RETURNING kid",
                (tenant, user.encode()),
            )).fetchall()
        return [r[0] for r in rows]

    async def forgotten(self, tenant: str, user: str) -> list[str]:
        """The ids of the person's keys deleted so far, oldest first."""
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(
                "SELECT kid FROM forgotten_keys WHERE tenant = %s AND user_id = %s ORDER BY forgotten_at, kid",
                (tenant, user.encode()),
            )).fetchall()
        return [r[0] for r in rows]


async def open_key_store(settings: Settings, max_size: int = 4, schema: str | None = None,
                         open_timeout_s: float = 60.0) -> tuple[PgKeyStore, AsyncConnectionPool]:
    """The shared key store on its own schema, migrated (services racing at start are safe: advisory lock)."""
    from agentbus.db import migrate, open_pool, schema_name

    schema = schema or schema_name(SCHEMA, settings)
    pool = await open_pool(settings, schema, max_size=max(max_size, settings.db_pool_min),
                           open_timeout_s=open_timeout_s)
    await migrate(pool, schema, MIGRATIONS)
    return PgKeyStore(pool), pool


@asynccontextmanager
async def optional_keyring(settings: Settings) -> AsyncIterator[Keyring | None]:
    """The command line's keyring, when the database can be reached (a person's text then shows opened, or
    ``[forgotten]``); None otherwise (it shows ``[sealed]``), said on standard error."""
    import sys

    try:
        store, pool = await open_key_store(settings, max_size=1, open_timeout_s=5.0)
    except Exception as exc:  # noqa: BLE001 - no database here: the events still show, their text sealed
        print(f"note: the key store is not reachable ({type(exc).__name__}); people's text shows as [sealed]",
              file=sys.stderr)
        yield None
        return
    try:
        yield Keyring(store, settings.key_cache_s)
    finally:
        await pool.close()
