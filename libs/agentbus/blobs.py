"""Content-addressed blob store: the bytes of media sent to the bot, held outside the events.

Events carry only a reference (``sha256:<hex>`` of the bytes), so a 20 MiB photo never enters Kafka. A blob is
immutable and named by its content: writing the same bytes twice is one row, a reference never points at other
bytes, and no service needs to coordinate with another. That is why this table may break the rule of one
schema per service: ingress writes it, the reasoner reads it, and neither can change what the other sees.
The table lives in a schema of its own (``blobs``), migrated by whichever service opens it first.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

    from agentbus.settings import Settings

SCHEMA = "blobs"
MIGRATIONS = Path(__file__).parent / "migrations"


def ref_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class BlobStore(Protocol):
    async def put(self, data: bytes, content_type: str) -> str:
        """Store ``data`` (idempotent) and return its reference ``sha256:<hex>``."""
        ...

    async def get(self, ref: str) -> tuple[bytes, str] | None:
        """(bytes, content type) of a reference, or None when it is not stored."""
        ...


class PgBlobStore:
    """Blobs in PostgreSQL (``bytea``): no extra system to run; an object store can replace it behind the port."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def put(self, data: bytes, content_type: str) -> str:
        ref = ref_of(data)
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO blobs (ref, content_type, size, data) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (ref) DO NOTHING", (ref, content_type, len(data), data))
        return ref

    async def get(self, ref: str) -> tuple[bytes, str] | None:
        async with self._pool.connection() as conn:
            row = await (await conn.execute("SELECT data, content_type FROM blobs WHERE ref = %s", (ref,))).fetchone()
        return (bytes(row[0]), str(row[1])) if row is not None else None


async def open_blob_store(settings: Settings, max_size: int = 4) -> tuple[PgBlobStore, AsyncConnectionPool]:
    """The shared blob store on its own schema, migrated (replicas and services race safely: advisory lock)."""
    from agentbus.db import migrate, open_pool, schema_name

    schema = schema_name(SCHEMA, settings)
    pool = await open_pool(settings, schema, max_size=max(max_size, settings.db_pool_min))
    await migrate(pool, schema, MIGRATIONS)
    return PgBlobStore(pool), pool
