"""The keyring of a test platform's services (its key store schema), for tests that read people's text back
from the event log: without it the text shows ``[sealed]``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from agentbus.sealing import Keyring
from agentbus.sealing.keystore import SCHEMA, open_key_store
from agentbus.settings import Settings
from tests.support.platform import Platform


@asynccontextmanager
async def platform_keyring(p: Platform) -> AsyncIterator[Keyring]:
    store, pool = await open_key_store(Settings(database_url=p.stack.service_env["AGENTBUS_DATABASE_URL"]),
                                       max_size=1, schema=p.schema(SCHEMA))
    try:
        yield Keyring(store, ttl_s=0)
    finally:
        await pool.close()
