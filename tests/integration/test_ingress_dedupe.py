"""Ingress's de-duplication table against the real PostgreSQL, with webhooks handled together."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from agentbus.cli.admin import migrations_dir
from agentbus.db import migrate, open_pool
from agentbus.services.ingress.accept import Acceptor
from agentbus.settings import Settings
from tests.support.platform import Infra

pytestmark = pytest.mark.integration


async def test_lookups_and_records_made_together_answer_each_webhook(infra: Infra) -> None:
    schema = f"ingress_dd_{uuid.uuid4().hex[:8]}"
    pool = await open_pool(Settings(database_url=infra.database_url), schema, max_size=2)
    try:
        await migrate(pool, schema, migrations_dir("ingress"))
        acceptor = Acceptor(pool, producer=None)  # type: ignore[arg-type]  # nothing is published here
        many: list[int] = []
        for name in ("_seen", "_record"):
            coalescer = getattr(acceptor, name)
            inner = coalescer._many

            async def counting(items, inner=inner):  # type: ignore[no-untyped-def]
                many.append(len(items))
                return await inner(items)

            coalescer._many = counting
        keys = [("acme", f"m{i}") for i in range(5)]
        await asyncio.gather(*(acceptor._record((c, i, uuid.uuid4())) for c, i in keys[:3]))
        seen = await asyncio.gather(*(acceptor._seen(k) for k in [*keys, ("globex", "m0")]))
        assert seen == [True, True, True, False, False, False]  # same id on another channel is another message
        assert many == [3, 6]
        await acceptor.aclose()
    finally:
        async with pool.connection() as conn:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await pool.close()
