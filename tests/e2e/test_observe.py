"""trace, events tail and replay against the real broker and the running services."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from agentbus.cli.tools import signed_request
from tests.support.platform import Infra, Platform, base_config, run_platform, secret_for
from tests.support.servers import FakeLLM, WebhookSink

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def setup(infra: Infra) -> AsyncIterator[tuple[Platform, FakeLLM, WebhookSink]]:
    llm = await FakeLLM(reply_prefix="live: ").start()
    sink = await WebhookSink({"acme": secret_for("acme"), "globex": secret_for("globex")}).start()
    assert sink.server is not None
    async with run_platform(infra, base_config(sink.server.url, llm.base_url)) as p:
        yield p, llm, sink
    await sink.stop()
    await llm.stop()


async def cli(p: Platform, infra: Infra, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGENTBUS_KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap, "AGENTBUS_TOPIC_PREFIX": p.prefix,
           "AGENTBUS_DATABASE_URL": infra.database_url, "AGENTBUS_DB_SCHEMA_SUFFIX": p.schema_suffix, "COLUMNS": "200"}
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "agentbus.cli", *args], env=env, capture_output=True, text=True,
        timeout=120,
    )


async def send(p: Platform, conv: str, text: str) -> str:
    body, headers = signed_request(secret_for("acme"), {"conversation": conv, "sender": {"id": "u"}, "text": text})
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{p.ingress_url}/v1/webhooks/acme", content=body, headers=headers)
    assert r.status_code == 202
    return r.headers["x-agentbus-event-id"]


async def test_trace_tail_and_replay(setup: tuple[Platform, FakeLLM, WebhookSink], infra: Infra) -> None:
    p, llm, sink = setup
    conv = f"obs-{uuid.uuid4().hex[:6]}"
    first = await send(p, conv, "first question")
    await sink.wait_for(lambda m: m["conversation"] == conv)
    await send(p, conv, "second question")
    await sink.wait_for(lambda m: m["conversation"] == conv and "second" in m["text"])
    await asyncio.sleep(0.5)  # delivery.completed follows the push

    t = await cli(p, infra, "trace", first)
    assert t.returncode == 0, t.stderr
    for hop in ("message.received", "context.assembled", "inference.completed", "reply.generated",
                "delivery.completed", "fake-model", "delivered", "trace id:"):
        assert hop in t.stdout, (hop, t.stdout)
    tj = json.loads((await cli(p, infra, "trace", first, "--json")).stdout)
    assert [x["event"]["type"] for x in tj][0] == "message.received" and len({x["trace_id"] for x in tj}) == 1

    tail = await cli(p, infra, "events", "tail", "--from-beginning", "--json", "--limit", "4",
                     "--type", "reply.generated", "--type", "message.received")
    lines = [json.loads(line) for line in tail.stdout.splitlines()]
    assert len(lines) == 4 and {x["type"] for x in lines} == {"reply.generated", "message.received"}

    calls_before, pushes_before = len(llm.calls), len(sink.received)
    reuse = await cli(p, infra, "replay", "--from", "context", "--conversation", conv, "--json", "--timeout", "60")
    assert reuse.returncode == 0, reuse.stderr
    rep = json.loads(reuse.stdout)
    assert rep["selected"] == 2 and rep["replayed"] == 2 and rep["changed"] == 0 and rep["pushed_to_channels"] == 0
    assert all(m["delivery"] == "suppressed" for m in rep["messages"])
    assert len(llm.calls) == calls_before, "the ledger answered; no second LLM call"

    rerun = await cli(p, infra, "replay", "--from", "message", "--conversation", conv, "--rerun-llm",
                      "--model", "echo", "--json", "--timeout", "60")
    assert rerun.returncode == 0, rerun.stderr
    rr = json.loads(rerun.stdout)
    assert rr["replayed"] == 2 and rr["changed"] == 2
    m = {x["original"]: x for x in rr["messages"]}
    second = m["live: second question"]
    assert second["replayed_model"] == "echo" and "echo model" in second["replayed"]
    assert "first question" in second["replayed"], "the replayed context still has the conversation's history"
    await asyncio.sleep(1)
    assert len(sink.received) == pushes_before, "nothing replayed reached a channel"
    assert len(llm.calls) == calls_before
