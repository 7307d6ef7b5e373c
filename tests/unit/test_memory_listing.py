"""Memory's admin reads of its memories over real HTTP with fake vectors: a conversation's memories newest
first and one memory by id, each only within the asking tenant, and bad queries refused with the reason."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from urllib.parse import quote

import httpx

from agentbus.http import LoopbackServer
from agentbus.services.memory.ports import Origin, Scope
from agentbus.services.memory.routes import memory_routes
from tests.unit.fakes_memory import FakeVectors

KEY = "acme/hook/room/1"


async def test_memories_of_a_conversation_and_one_by_id_within_the_tenant() -> None:
    vectors = FakeVectors()
    first, second, theirs = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    await vectors.upsert(first, [1.0], Scope("acme"), KEY, "user", "my locker is 12", at,
                         origin=Origin(owner="u1", sender="u1", chat="room/1", chat_type="direct"))
    await vectors.upsert(second, [1.0], Scope("acme"), KEY, "assistant", "noted", at)
    await vectors.upsert(theirs, [1.0], Scope("globex"), "globex/hook/x", "user", "globex's", at)
    server = LoopbackServer(memory_routes(vectors))
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as c:
            resp = await c.get(f"/v1/conversations/{quote(KEY, safe='')}/memories", params={"tenant": "acme"})
            assert resp.status_code == 200, resp.text
            items = resp.json()["items"]
            assert [(m["id"], m["text"]) for m in items] == [(str(second), "noted"), (str(first), "my locker is 12")]
            assert items[1]["sender"] == "u1" and items[1]["chat_type"] == "direct" and "score" not in items[1]
            limited = await c.get(f"/v1/conversations/{KEY}/memories", params={"tenant": "acme", "limit": "1"})
            assert [m["text"] for m in limited.json()["items"]] == ["noted"]
            other = await c.get(f"/v1/conversations/{KEY}/memories", params={"tenant": "globex"})
            assert other.status_code == 404
            bad = await c.get(f"/v1/conversations/{KEY}/memories", params={"tenant": "acme", "limit": "0"})
            assert bad.status_code == 400 and "limit" in bad.json()["error"]
            one = await c.get(f"/v1/memories/{first}", params={"tenant": "acme"})
            assert one.status_code == 200 and one.json()["items"][0]["text"] == "my locker is 12"
            assert (await c.get(f"/v1/memories/{theirs}", params={"tenant": "acme"})).status_code == 404
            assert (await c.get("/v1/memories/nope", params={"tenant": "acme"})).status_code == 400
            assert (await c.get(f"/v1/memories/{first}")).status_code == 400  # tenant: required
    finally:
        await server.stop()
    off = LoopbackServer(memory_routes(None))
    await off.start()
    try:
        async with httpx.AsyncClient(base_url=off.url) as c:
            resp = await c.get(f"/v1/memories/{first}", params={"tenant": "acme"})
            assert resp.status_code == 503 and "semantic memory is off" in resp.json()["error"]
    finally:
        await off.stop()
