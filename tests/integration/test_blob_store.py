"""The blob store against the real PostgreSQL: content-addressed, idempotent, shared by two services' pools."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from agentbus.blobs import open_blob_store, ref_of
from agentbus.settings import Settings
from tests.support.platform import Infra

pytestmark = pytest.mark.integration


async def test_put_get_and_two_pools_racing_on_one_schema(infra: Infra, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTBUS_DB_SCHEMA_SUFFIX", f"_t{uuid.uuid4().hex[:8]}")
    settings = Settings(database_url=infra.database_url)
    # ingress and the reasoner start together: both migrate the one schema, neither fails
    (writer, wpool), (reader, rpool) = await asyncio.gather(open_blob_store(settings), open_blob_store(settings))
    try:
        data = os.urandom(300_000) + b"\x00\xff"
        ref = await writer.put(data, "image/png")
        assert ref == ref_of(data) and ref.startswith("sha256:") and len(ref) == 7 + 64
        again = await asyncio.gather(*(writer.put(data, "image/png") for _ in range(5)))  # retries of one message
        assert set(again) == {ref}
        assert await reader.get(ref) == (data, "image/png")
        assert await reader.get(ref_of(b"never stored")) is None
        async with rpool.connection() as conn:
            [count] = await (await conn.execute("SELECT count(*) FROM blobs")).fetchone()  # type: ignore[misc]
        assert count == 1
    finally:
        async with wpool.connection() as conn:
            await conn.execute(f'DROP SCHEMA "blobs{os.environ["AGENTBUS_DB_SCHEMA_SUFFIX"]}" CASCADE')
        await wpool.close()
        await rpool.close()
