"""The people's data keys in the real PostgreSQL: one key per person however many services race to make it,
read by id from another pool, and gone (with a tombstone of its id) once the person is forgotten."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from agentbus.sealing import FORGOTTEN, Keyring
from agentbus.sealing.keystore import open_key_store
from agentbus.settings import Settings
from tests.support.platform import Infra

pytestmark = pytest.mark.integration


async def test_keys_made_once_read_elsewhere_and_forgotten(infra: Infra, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTBUS_DB_SCHEMA_SUFFIX", f"_t{uuid.uuid4().hex[:8]}")
    settings = Settings(database_url=infra.database_url)
    (ingress, ipool), (memory, mpool) = await asyncio.gather(open_key_store(settings), open_key_store(settings))
    try:
        made = await asyncio.gather(*(s.key_for("acme", "u1") for s in (ingress, memory) for _ in range(4)))
        assert len({k.kid for k in made}) == 1 and len({k.secret for k in made}) == 1
        other = await ingress.key_for("acme", "u2")
        elsewhere = await ingress.key_for("globex", "u1")
        assert len({made[0].kid, other.kid, elsewhere.kid}) == 3
        assert await memory.keys([made[0].kid, other.kid, "nope"]) == {made[0].kid: made[0], other.kid: other}

        ring = Keyring(memory, ttl_s=0)
        sealed = await Keyring(ingress).seal_text("acme", "u1", "my locker code is 4417", "e/data.text")
        assert await ring.open_text(sealed) == "my locker code is 4417"
        assert await ingress.forget("acme", "u1") == [made[0].kid]
        assert await ingress.forget("acme", "u1") == []
        assert await ring.open_text(sealed) == FORGOTTEN
        assert await memory.forgotten("acme", "u1") == [made[0].kid]
        assert await memory.keys([other.kid]) == {other.kid: other}  # another person's key untouched
        again = await memory.key_for("acme", "u1")
        assert again.kid != made[0].kid
        odd = await ingress.key_for("acme", "a\x00b 名字")  # any sender id a platform may send has a key
        assert (await memory.keys([odd.kid]))[odd.kid].user == "a\x00b 名字"
        assert await memory.forget("acme", "a\x00b 名字") == [odd.kid]
        async with ipool.connection() as conn:
            rows = await (await conn.execute("SELECT count(*) FROM user_keys")).fetchone()
        assert rows is not None and rows[0] == 3
    finally:
        async with ipool.connection() as conn:
            await conn.execute(f'DROP SCHEMA "keyring{os.environ["AGENTBUS_DB_SCHEMA_SUFFIX"]}" CASCADE')
        await ipool.close()
        await mpool.close()
