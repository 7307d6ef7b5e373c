"""Ingress's de-duplication table against the real PostgreSQL, with webhooks handled together."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from agentbus.services.ingress.dedupe import PgDedupe
from tests.support.db import service_pool
from tests.support.platform import Infra

pytestmark = pytest.mark.integration


async def test_lookups_and_records_made_together_answer_each_webhook(infra: Infra) -> None:
    async with service_pool(infra.database_url, "ingress", max_size=2) as pool:
        dedupe = PgDedupe(pool)
        many: list[int] = []
        for name in ("_seen", "_record"):
            coalescer = getattr(dedupe, name)
            inner = coalescer._many

            async def counting(items, inner=inner):  # type: ignore[no-untyped-def]
                many.append(len(items))
                return await inner(items)

            coalescer._many = counting
        keys = [("acme", f"m{i}") for i in range(5)]
        await asyncio.gather(*(dedupe.record(c, i, uuid.uuid4()) for c, i in keys[:3]))
        seen = await asyncio.gather(*(dedupe.seen(c, i) for c, i in [*keys, ("globex", "m0")]))
        assert seen == [True, True, True, False, False, False]  # same id on another channel is another message
        assert many == [3, 6]
        await dedupe.aclose()
