"""The Qdrant vector store (production's) through qdrant-client's in-process mode, which serves the same API
as a Qdrant server: per-tenant collections, batched upserts, ranked recall without the asking turn."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from agentbus.services.memory.vectors import QdrantStore


async def test_recall_per_tenant_ranked_without_the_asking_turn() -> None:
    store = QdrantStore.connect(None, None, None, "test_memory", 4)
    await store.ensure()
    now = datetime.now(UTC)
    asking = uuid.uuid4()
    await asyncio.gather(
        store.upsert(uuid.uuid4(), [1.0, 0.0, 0.0, 0.0], "acme", "acme/c", "user", "exact", now),
        store.upsert(uuid.uuid4(), [1.0, 1.0, 0.0, 0.0], "acme", "acme/c", "assistant", "diagonal", now),
        store.upsert(asking, [2.0, 0.0, 0.0, 0.0], "acme", "acme/c", "user", "the question", now),
        store.upsert(uuid.uuid4(), [1.0, 0.0, 0.0, 0.0], "globex", "globex/c", "user", "globex secret", now),
    )
    found = await store.search([1.0, 0.0, 0.0, 0.0], "acme", 2, exclude=asking)
    assert [r.text for r in found] == ["exact", "diagonal"]
    assert found[1].role == "assistant" and found[1].conversation == "acme/c"
    assert [r.text for r in await store.search([1.0, 0.0, 0.0, 0.0], "globex", 5, None)] == ["globex secret"]
    await store.aclose()
