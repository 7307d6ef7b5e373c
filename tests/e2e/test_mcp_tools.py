"""MCP tools through the running platform: the reasoner starts an MCP server (built with the official SDK)
over stdio, the agent calls its tools by their prefixed names, and the side-effecting call carries the loop's
idempotency key to the server."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentbus.cli.tools import signed_request
from agentbus.eventlog import read
from agentbus.events import ToolCalled
from agentbus.ids import tool_call_key
from agentbus.settings import Settings
from agentbus.topics import topic_of
from tests.support.keys import platform_keyring
from tests.support.platform import Infra, Platform, base_config, run_platform, secret_for
from tests.support.servers import FakeLLM, WebhookSink, tool_call

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def script(body: dict[str, Any]) -> dict[str, Any]:
    last = body["messages"][-1]
    if last["role"] == "tool":
        return {"content": " | ".join(m["content"] for m in body["messages"] if m["role"] == "tool")}
    return {"tool_calls": [tool_call("tickets__create_ticket", {"title": "vpn down"}, "call_c"),
                           tool_call("tickets__add", {"a": 2, "b": 3}, "call_a")]}


@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[FakeLLM]:
    f = await FakeLLM(script=script).start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, llm: FakeLLM, sink: WebhookSink) -> AsyncIterator[Platform]:
    assert sink.server is not None
    cfg = base_config(sink.server.url, llm.base_url)
    cfg["agents"][0]["tools"] = ["tickets__*"]
    cfg["mcp_servers"] = [{"name": "tickets", "transport": "stdio", "command": sys.executable,
                           "args": ["-m", "tests.fakes.mcp_server", "stdio"], "env": {"PYTHONPATH": str(ROOT)}}]
    async with run_platform(infra, cfg, services=("ingress", "memory", "reasoner", "egress")) as p:
        yield p


async def test_the_agent_calls_an_mcp_servers_tools_with_the_idempotency_key(
    infra: Infra, platform: Platform, llm: FakeLLM, sink: WebhookSink
) -> None:
    conv = f"mcp-{uuid.uuid4().hex[:6]}"
    body, headers = signed_request(secret_for("acme"), {"conversation": conv, "sender": {"id": "u"},
                                                        "text": "the vpn is down, open a ticket"})
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{platform.ingress_url}/v1/webhooks/acme", content=body, headers=headers)
    assert r.status_code == 202, r.text
    [push] = await sink.wait_for(lambda m: m["conversation"] == conv)
    offered = {t["function"]["name"] for t in llm.calls[0]["tools"]}
    assert {"tickets__create_ticket", "tickets__add", "tickets__echo"} <= offered
    assert "ticket 'vpn down' meta-key=" in push["text"] and "| 5" in push["text"]
    key = push["text"].split("meta-key=")[1].split(" ")[0]
    s = Settings(kafka_bootstrap_servers=infra.bootstrap, topic_prefix=platform.prefix)
    async with asyncio.timeout(20), platform_keyring(platform) as keys:
        while True:
            called = {lg.event.data.tool: lg.event
                      for lg in await read(s, [topic_of(platform.prefix, ToolCalled)], keyring=keys)
                      if isinstance(lg.event, ToolCalled) and lg.event.conversation.endswith(conv)}
            if len(called) == 2:
                break
            await asyncio.sleep(0.3)
    ticket = called["tickets__create_ticket"]
    assert ticket.causation_id is not None and ticket.data.side_effects
    assert key == ticket.data.idempotency_key == tool_call_key(ticket.causation_id, 1, "call_c")
    assert called["tickets__add"].data.result == "5"
