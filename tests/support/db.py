"""A service's migrated schema, unique to one test, in the tests' PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from psycopg_pool import AsyncConnectionPool

from agentbus.cli.admin import migrations_dir
from agentbus.db import migrate, open_pool
from agentbus.settings import Settings


@asynccontextmanager
async def service_pool(database_url: str, service: str, max_size: int = 4) -> AsyncIterator[AsyncConnectionPool]:
    """A pool on a fresh schema holding ``service``'s migrations; the schema is dropped afterwards."""
    schema = f"{service}_t_{uuid.uuid4().hex[:8]}"
    pool = await open_pool(Settings(database_url=database_url), schema, max_size=max_size)
    try:
        await migrate(pool, schema, migrations_dir(service))
        yield pool
    finally:
        async with pool.connection() as conn:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await pool.close()
