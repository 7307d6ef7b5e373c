"""The reasoner's ``memory`` tool against memory's real ``/v1/recall`` route over HTTP (fakes behind it):
remember and forget become commands with derived ids, search reads matches, and every failure is an error
result the model reads, never an exception."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from agentbus.config import parse_config
from agentbus.events import (
    Chat,
    ContextAssembled,
    ContextAssembledData,
    MemoryRequested,
    MessageReceived,
    MessageReceivedData,
    Sender,
    Turn,
)
from agentbus.ids import Step
from agentbus.services.memory.ports import Origin, Scope
from agentbus.services.memory.routes import recall_routes
from agentbus.services.reasoner.tools.base import ToolContext
from agentbus.services.reasoner.tools.memory import MemoryTool, memory_url
from agentbus.settings import Settings
from agentbus.stack.procs import free_port
from tests.support.admin_http import serving
from tests.support.platform import base_config
from tests.unit.fakes_memory import FakeEmbedder, FakeVectors

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def context(tenant: str = "acme", sender: str = "u1", text: str = "remember my locker is 12") -> ToolContext:
    msg = MessageReceived.new(
        MessageReceivedData(channel=tenant, channel_type="webhook", agent="assistant", platform_message_id="m1",
                            sender=Sender(id=sender), chat=Chat(id="c1"), text=text, received_at=NOW),
        source="ingress", tenant=tenant, conversation=f"{tenant}/{tenant}/c1")
    data = ContextAssembledData(agent="assistant", channel=tenant, channel_type="webhook", chat=Chat(id="c1"),
                                trigger="message", input=Turn(role="user", text=text, at=NOW, sender=sender))
    cause = msg.follow(ContextAssembled, data, source="memory", step=Step.CONTEXT)
    return ToolContext(cause=cause, idempotency_key=f"{cause.id}:1:call_1", now=NOW)


@pytest.fixture
async def vectors() -> FakeVectors:
    v = FakeVectors()
    await v.upsert(uuid.uuid4(), [1.0, 0.0], Scope("acme"), "acme/acme/c1", "user",
                   "Alice's locker is number 12", NOW, "fact", "u1", Origin(owner="u1", sender="u1"))
    await v.upsert(uuid.uuid4(), [1.0, 0.0], Scope("globex"), "globex/globex/c1", "user",
                   "globex's secret", NOW, origin=Origin(owner="u1", sender="u1", sender_name="Gus", chat="c1",
                                                          chat_type="direct", channel="globex"))
    return v


@pytest.fixture
async def tool(vectors: FakeVectors) -> AsyncIterator[MemoryTool]:
    async with serving("memory", recall_routes(parse_config(base_config()), FakeEmbedder(), vectors)) as url:
        t = MemoryTool(url)
        yield t
        await t.aclose()


async def test_search_reads_the_tenants_matches(tool: MemoryTool) -> None:
    result = await tool.call({"action": "search", "text": "locker", "limit": 3}, context())
    assert not result.is_error and result.commands == ()
    assert "- [2026-03-01, fact about u1] Alice's locker is number 12 (fact; score 0.90)" in result.content
    assert "globex" not in result.content


async def test_search_reads_only_the_askers_own_memories(tool: MemoryTool, vectors: FakeVectors) -> None:
    result = await tool.call({"action": "search", "text": "locker"}, context(sender="u2"))
    assert not result.is_error and result.content == "Nothing remembered matches that."
    [(scope, _)] = vectors.searches
    assert scope == Scope("acme", owner="u2")  # filtered in the store, by the agent's default user scope


async def test_search_with_nothing_remembered_says_so(tool: MemoryTool) -> None:
    result = await tool.call({"action": "search", "text": "locker"}, context(tenant="globex"))
    assert not result.is_error
    assert "- [2026-03-01, Gus in a direct chat on globex] globex's secret (turn; score 0.90)" in result.content
    empty = MemoryTool("http://unused")  # not called: arguments are refused first
    bad = await empty.call({"action": "search", "text": ""}, context())
    assert bad.is_error and "text" in bad.content
    await empty.aclose()


async def test_remember_and_forget_are_commands_with_ids_derived_from_the_call(tool: MemoryTool) -> None:
    ctx = context()
    remember = await tool.call({"action": "remember", "text": "Alice's locker is number 12"}, ctx)
    assert remember.content == "I will remember: Alice's locker is number 12" and not remember.is_error
    [cmd] = remember.commands
    assert isinstance(cmd, MemoryRequested)
    assert cmd.data.action == "remember" and cmd.data.subject == "u1" and cmd.data.requested_by == "agent:assistant"
    assert cmd.tenant == "acme" and cmd.causation_id == ctx.cause.id and cmd.correlation_id == ctx.cause.correlation_id
    again = await tool.call({"action": "remember", "text": "Alice's locker is number 12"}, ctx)  # a redelivery
    assert again.commands[0].id == cmd.id
    other_call = ToolContext(cause=ctx.cause, idempotency_key=f"{ctx.cause.id}:1:call_2", now=NOW)
    assert (await tool.call({"action": "remember", "text": "x"}, other_call)).commands[0].id != cmd.id
    forget_call = ToolContext(cause=ctx.cause, idempotency_key=f"{ctx.cause.id}:2:call_1", now=NOW)
    forgetting = await tool.call({"action": "forget", "text": "my locker"}, forget_call)
    assert forgetting.content == "I will forget what I remember about: my locker"
    [forget] = forgetting.commands
    assert forget.data.action == "forget" and forget.data.min_score == 0.85 and forget.id != cmd.id


async def test_memory_down_is_an_error_result() -> None:
    t = MemoryTool(f"http://127.0.0.1:{free_port()}", timeout_s=2.0)
    result = await t.call({"action": "search", "text": "locker"}, context())
    assert result.is_error and "memory is unavailable" in result.content
    await t.aclose()


async def test_a_refusal_of_memory_is_an_error_result_with_its_reason(tool: MemoryTool) -> None:
    result = await tool.call({"action": "search", "text": "locker"}, context(tenant="initech"))
    assert result.is_error and "404" in result.content and "unknown tenant 'initech'" in result.content


async def test_the_recall_route_refuses_bad_input_with_a_reason(vectors: FakeVectors) -> None:
    async with serving("memory", recall_routes(parse_config(base_config()), FakeEmbedder(), vectors)) as url, \
            httpx.AsyncClient(base_url=url) as http:
        ok = await http.post("/v1/recall", json={"tenant": "acme", "text": "locker"})
        assert ok.status_code == 200 and [m["text"] for m in ok.json()["matches"]] == ["Alice's locker is number 12"]
        assert ok.json()["matches"][0]["kind"] == "fact"
        bad_json = await http.post("/v1/recall", content=b"{nope", headers={"content-type": "application/json"})
        assert bad_json.status_code == 400 and "JSON" in bad_json.json()["error"]
        bad_limit = await http.post("/v1/recall", json={"tenant": "acme", "text": "x", "limit": 0})
        assert bad_limit.status_code == 422 and "limit" in bad_limit.json()["error"]
        extra = await http.post("/v1/recall", json={"tenant": "acme", "text": "x", "scope": "all"})
        assert extra.status_code == 422 and "scope" in extra.json()["error"]
        too_big = await http.post("/v1/recall", json={"tenant": "acme", "text": "x" * 70_000})
        assert too_big.status_code == 413
        assert (await http.get("/v1/recall")).status_code == 405
        no_agent = await http.post("/v1/recall", json={"tenant": "acme", "text": "x", "agent": "nobody",
                                                       "sender": "u1", "conversation": "acme/acme/c1"})
        assert no_agent.status_code == 422 and "unknown agent 'nobody'" in no_agent.json()["error"]
        nowhere = await http.post("/v1/recall", json={"tenant": "acme", "text": "x", "agent": "assistant",
                                                      "sender": "u1"})
        assert nowhere.status_code == 422 and "conversation is required" in nowhere.json()["error"]
        bad_group = await http.post("/v1/recall", json={"tenant": "acme", "text": "x", "group": "yes please"})
        assert bad_group.status_code == 422 and "group" in bad_group.json()["error"]
    assert [scope for scope, _ in vectors.searches] == [Scope("acme")]  # the refused ones searched nothing


async def test_the_recall_route_searches_in_the_agents_scope_for_the_person_asking(vectors: FakeVectors) -> None:
    doc = base_config()
    doc["agents"][0]["memory"]["recall_scope"] = "conversation"
    async with serving("memory", recall_routes(parse_config(doc), FakeEmbedder(), vectors)) as url, \
            httpx.AsyncClient(base_url=url) as http:
        ask = {"tenant": "acme", "text": "locker", "agent": "assistant", "sender": "u2", "conversation": "acme/acme/c1"}
        mine = await http.post("/v1/recall", json=ask)
        elsewhere = await http.post("/v1/recall", json={**ask, "conversation": "acme/acme/c9"})
    assert [m["text"] for m in mine.json()["matches"]] == ["Alice's locker is number 12"]
    assert elsewhere.status_code == 200 and elsewhere.json() == {"matches": []}
    assert [scope for scope, _ in vectors.searches] == [Scope("acme", conversation="acme/acme/c1"),
                                                         Scope("acme", conversation="acme/acme/c9")]


async def test_without_semantic_memory_recall_answers_503() -> None:
    async with serving("memory", recall_routes(parse_config(base_config()), None, None)) as url, \
            httpx.AsyncClient(base_url=url) as http:
        resp = await http.post("/v1/recall", json={"tenant": "acme", "text": "locker"})
        assert resp.status_code == 503 and "semantic memory is off" in resp.json()["error"]


def test_the_memory_url_is_a_setting_with_memorys_default_port() -> None:
    assert memory_url(Settings(http_port=9999)) == "http://127.0.0.1:8081"
    assert memory_url(Settings(memory_url="http://memory:8081/")) == "http://memory:8081"
