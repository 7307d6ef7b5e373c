"""Agents that act, as processes: a chat message makes the model call tools (a company API with side effects,
the clock), the reply carries their results, every call is a tool.called event, and the API sees one
Idempotency-Key per decision."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentbus.cli.tools import signed_request
from agentbus.eventlog import read
from agentbus.events import ToolCalled
from agentbus.http import LoopbackServer
from agentbus.settings import Settings
from agentbus.topics import topic_of
from tests.support.keys import platform_keyring
from tests.support.platform import Infra, Platform, base_config, run_platform, secret_for
from tests.support.servers import FakeLLM, WebhookSink, tool_call

pytestmark = pytest.mark.e2e


class TicketApi:
    """The company's ticket system: records each request with its Idempotency-Key."""

    def __init__(self) -> None:
        self.requests: list[tuple[str | None, dict[str, Any]]] = []
        self.server: LoopbackServer | None = None

    async def start(self) -> TicketApi:
        async def create(request: Request) -> Response:
            body = orjson.loads(await request.body())
            self.requests.append((request.headers.get("idempotency-key"), body))
            return JSONResponse({"ticket": f"T-{len(self.requests)}", "title": body["arguments"]["title"]})

        self.server = LoopbackServer([Route("/tickets", create, methods=["POST"])])
        await self.server.start()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url + "/tickets"


def script(body: dict[str, Any]) -> dict[str, Any]:
    """Opens a ticket and reads the clock at once; then answers with what the tools said."""
    last = body["messages"][-1]
    if last["role"] == "tool":
        results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
        return {"content": "done: " + " | ".join(results)}
    if "remind me in 5 seconds" in last["content"]:
        return {"tool_calls": [tool_call("schedule", {"action": "create", "in_seconds": 5,
                                                      "prompt": "Time to remind the user: stand up"}, "call_s")]}
    if last["content"].startswith("Time to remind the user"):
        return {"content": "Reminder: stand up!"}
    if "ticket" in last["content"]:
        return {"tool_calls": [tool_call("tickets", {"title": "printer on fire"}, "call_t"),
                               tool_call("now", {"timezone": "Asia/Shanghai"}, "call_n")]}
    return {"content": f"answer: {last['content']}"}


def tools_config(sink: WebhookSink, llm: FakeLLM, api: TicketApi) -> dict[str, Any]:
    assert sink.server is not None
    cfg = base_config(sink.server.url, llm.base_url)
    cfg["agents"][0]["tools"] = ["tickets", "now", "schedule"]
    cfg["http_tools"] = [{"name": "tickets", "description": "open a ticket in the help desk", "url": api.url,
                          "parameters": {"type": "object", "properties": {"title": {"type": "string"}},
                                         "required": ["title"]}}]
    return cfg


@pytest.fixture(scope="module")
async def api() -> AsyncIterator[TicketApi]:
    a = await TicketApi().start()
    yield a
    assert a.server is not None
    await a.server.stop()


@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[FakeLLM]:
    f = await FakeLLM(script=script).start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, llm: FakeLLM, sink: WebhookSink, api: TicketApi) -> AsyncIterator[Platform]:
    async with run_platform(infra, tools_config(sink, llm, api)) as p:
        yield p


async def test_a_message_makes_the_agent_call_tools_and_answer_with_their_results(
    infra: Infra, platform: Platform, llm: FakeLLM, sink: WebhookSink, api: TicketApi
) -> None:
    conv = f"tools-{uuid.uuid4().hex[:6]}"
    body, headers = signed_request(secret_for("acme"), {"conversation": conv, "sender": {"id": "u1"},
                                                        "text": "please open a ticket: the printer is on fire"})
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{platform.ingress_url}/v1/webhooks/acme", content=body, headers=headers)
    assert r.status_code == 202, r.text
    [push] = await sink.wait_for(lambda m: m["conversation"] == conv)
    assert push["text"].startswith("done: ") and '"ticket":"T-' in push["text"] and "Asia/Shanghai" in push["text"]
    offered = {t["function"]["name"] for t in llm.calls[0]["tools"]}
    assert offered == {"tickets", "now", "schedule"}
    [(key, sent)] = [(k, b) for k, b in api.requests if b["context"]["conversation"].endswith(conv)]
    assert sent["arguments"] == {"title": "printer on fire"} and sent["context"]["tenant"] == "acme"
    s = Settings(kafka_bootstrap_servers=infra.bootstrap, topic_prefix=platform.prefix)
    async with asyncio.timeout(20), platform_keyring(platform) as keys:
        while True:
            events = [lg.event for lg in await read(s, [topic_of(platform.prefix, ToolCalled)], keyring=keys)
                      if lg.event.conversation.endswith(conv)]
            if len(events) == 2:
                break
            await asyncio.sleep(0.3)
    by_tool = {e.data.tool: e for e in events if isinstance(e, ToolCalled)}
    assert by_tool["tickets"].data.side_effects and by_tool["tickets"].data.idempotency_key == key
    assert not by_tool["now"].data.side_effects and by_tool["now"].data.outcome == "ok"
    assert all(e.correlation_id == uuid.UUID(r.headers["x-agentbus-event-id"]) for e in events)


async def test_remind_me_in_5_seconds_makes_a_job_and_then_the_reminder_in_the_same_chat(
    platform: Platform, sink: WebhookSink
) -> None:
    conv = f"remind-{uuid.uuid4().hex[:6]}"
    body, headers = signed_request(secret_for("acme"), {"conversation": conv, "sender": {"id": "u2"},
                                                        "text": "remind me in 5 seconds to stand up"})
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{platform.ingress_url}/v1/webhooks/acme", content=body, headers=headers)
        assert r.status_code == 202, r.text
        [ack] = await sink.wait_for(lambda m: m["conversation"] == conv)
        assert ack["text"].startswith("done: created job job-")
        job_id = ack["text"].split("created job ")[1].split(" ")[0]
        # the command goes out with the reply: the scheduler may apply it a moment after the ack is pushed
        async with asyncio.timeout(20):
            while not (jobs := (await c.get(f"{platform.url_of('scheduler')}/v1/jobs", params={
                    "tenant": "acme", "channel": "acme", "chat": conv})).json()["jobs"]):
                await asyncio.sleep(0.2)
        assert [(j["job_id"], j["schedule"]["kind"], j["requested_by"]) for j in jobs] == [
            (job_id, "at", "agent:assistant")]
    reminder = await sink.wait_for(lambda m: m["conversation"] == conv and m["text"] == "Reminder: stand up!",
                                   timeout=60)
    assert len(reminder) == 1
    assert len([m for m in sink.received if m["conversation"] == conv]) == 2, "the ack and one reminder"


async def test_an_agent_naming_a_tool_nobody_provides_is_refused_at_start_naming_the_key(
    infra: Infra, tmp_path: Path
) -> None:
    cfg = base_config()
    cfg["agents"][0]["tools"] = ["now", "teleport"]
    path = tmp_path / "agentbus.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, **infra.env, "AGENTBUS_CONFIG_FILE": str(path), "AGENTBUS_HTTP_PORT": "0",
           "AGENTBUS_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:8]}",
           "AGENTBUS_DB_SCHEMA_SUFFIX": f"_t{uuid.uuid4().hex[:8]}", "AGENTBUS_DEV_MODE": "true"}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "agentbus.cli", "run", "reasoner", env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert "agents[0].tools[1]: unknown tool 'teleport'" in err.decode()
