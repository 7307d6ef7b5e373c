"""memory.requested against the real PostgreSQL and the embedded embeddings server: a fact remembered is
recalled, a forget deletes what is like its query from the table and from every replica's in-memory index
(after that replica's refresh), and neither a redelivery nor a redelivered write brings it back. Then
``/v1/recall`` and the agent's ``memory`` tool over real HTTP, end to end: tool → command → memory → recall."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Literal

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from agentbus.config import parse_config
from agentbus.events import MemoryCommand, MemoryRequested
from agentbus.services.memory.commandlog import PgCommandLog
from agentbus.services.memory.commands import MemoryCommands
from agentbus.services.memory.embeddings import OpenAIEmbedder
from agentbus.services.memory.inprocessvectors import InProcessVectorIndex
from agentbus.services.memory.ports import Scope
from agentbus.services.memory.recallgate import KIND
from agentbus.services.memory.routes import recall_routes
from agentbus.services.reasoner.tools.memory import MemoryTool
from agentbus.settings import Settings
from tests.support.admin_http import serving
from tests.support.db import service_pool
from tests.support.platform import Infra, base_config
from tests.unit.test_memory_tool import context

pytestmark = pytest.mark.integration
ACME = Scope("acme")
FACTS = ("my locker is 12", "the offsite is in May", "I like green tea")


@pytest.fixture
async def pool(infra: Infra) -> AsyncIterator[AsyncConnectionPool]:
    async with service_pool(infra.database_url, "memory") as p:
        yield p


@pytest.fixture
async def embedder(infra: Infra) -> AsyncIterator[OpenAIEmbedder]:
    s = Settings()
    e = OpenAIEmbedder(infra.embeddings_url, s.embeddings_model, None, 30.0)
    yield e
    await e.aclose()


def command(action: Literal["remember", "forget"], text: str, tenant: str = "acme") -> MemoryRequested:
    return MemoryRequested.new(MemoryCommand(action=action, text=text, subject="u1", requested_by="test"),
                               source="reasoner", tenant=tenant, conversation=f"{tenant}/{tenant}/c1")


async def texts(pool: AsyncConnectionPool, tenant: str) -> set[str]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT text FROM vectors WHERE tenant = %s", (tenant,))
        return {r[0] for r in await cur.fetchall()}


async def test_remembered_facts_are_recalled_and_forgetting_reaches_every_replica(
        pool: AsyncConnectionPool, embedder: OpenAIEmbedder) -> None:
    mine = InProcessVectorIndex(pool, Settings().embeddings_dim, refresh_s=0.0)
    other = InProcessVectorIndex(pool, Settings().embeddings_dim, refresh_s=0.0)  # another replica of memory
    log = PgCommandLog(pool)
    memory = MemoryCommands(embedder, mine, log)
    facts = [command("remember", t) for t in FACTS]
    globex = command("remember", "my locker is 12", tenant="globex")
    for c in (*facts, globex, facts[0]):  # the last one redelivered
        await memory.apply(c)
    assert await texts(pool, "acme") == set(FACTS)

    [question] = await embedder.embed(["what is my locker number?"], KIND)
    [top] = await other.search(question, ACME, 1)  # loads the tenant into the other replica's matrix
    assert (top.text, top.kind, top.role) == ("my locker is 12", "fact", "user")
    assert other.size("acme") == 3

    forget = command("forget", "my locker")
    await memory.apply(forget)
    assert await texts(pool, "acme") == {"the offsite is in May", "I like green tea"}
    assert await texts(pool, "globex") == {"my locker is 12"}
    assert await log.deleted_by(forget.id) == [facts[0].id]
    for replica in (mine, other):  # this replica at once, the other one at its refresh
        found = await replica.search(question, ACME, 5)
        assert {r.text for r in found} == {"the offsite is in May", "I like green tea"}
        assert replica.size("acme") == 2

    # neither the commands redelivered nor the fact's write redelivered brings it back
    await memory.apply(facts[0])
    await memory.apply(forget)
    [vector] = await embedder.embed([FACTS[0]], KIND)
    await mine.upsert(facts[0].id, vector, ACME, "acme/acme/c1", "user", FACTS[0], datetime.now(UTC), "fact")
    assert await texts(pool, "acme") == {"the offsite is in May", "I like green tea"}
    assert await log.deleted_by(forget.id) == [facts[0].id]
    assert mine.size("acme") == other.size("acme") == 2
    restarted = InProcessVectorIndex(pool, Settings().embeddings_dim)
    assert "my locker is 12" not in {r.text for r in await restarted.search(question, ACME, 5)}


async def test_recall_over_http_and_the_tool_end_to_end(pool: AsyncConnectionPool, embedder: OpenAIEmbedder) -> None:
    index = InProcessVectorIndex(pool, Settings().embeddings_dim, refresh_s=0.0)
    memory = MemoryCommands(embedder, index, PgCommandLog(pool))
    async with serving("memory", recall_routes(parse_config(base_config()), embedder, index)) as url:
        tool = MemoryTool(url)
        said = await tool.call({"action": "remember", "text": "Alice's locker is number 12"}, context())
        for cmd in said.commands:  # what the reasoner publishes with its reply, and memory consumes
            await memory.apply(cmd)
        await memory.apply(command("remember", "the offsite is in Lisbon in May"))

        async with httpx.AsyncClient(base_url=url) as http:
            resp = await http.post("/v1/recall", json={"tenant": "acme", "text": "where is the offsite?", "limit": 1})
            assert resp.status_code == 200
            [match] = resp.json()["matches"]
            assert match["text"] == "the offsite is in Lisbon in May" and match["kind"] == "fact"
            assert match["at"] is not None and 0.85 < match["score"] <= 1.0
            other_tenant = await http.post("/v1/recall", json={"tenant": "globex", "text": "offsite"})
            assert other_tenant.json() == {"matches": []}

        found = await tool.call({"action": "search", "text": "Alice's locker", "limit": 1}, context())
        assert not found.is_error and "fact about u1] Alice's locker is number 12 (fact;" in found.content

        forgot = await tool.call({"action": "forget", "text": "Alice's locker"},
                                 context(text="forget Alice's locker"))
        for cmd in forgot.commands:
            await memory.apply(cmd)
        after = await tool.call({"action": "search", "text": "Alice's locker", "limit": 5}, context())
        assert "Alice" not in after.content and "Lisbon" in after.content
        await tool.aclose()
