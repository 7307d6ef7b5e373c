"""A message's trace, read back from a real Jaeger v2 (built from its Go module by tools/jaeger.sh), is one tree
holding every service's spans. Runs in `make test-jaeger`; skipped when no Jaeger binary is configured."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentbus.cli.tools import signed_request
from agentbus.events import ContextAssembled, MessageReceived
from agentbus.stack.stack import Ports, jaeger_proc
from agentbus.topics import topic_of
from tests.support.platform import Infra, base_config, run_platform, secret_for
from tests.support.servers import FakeLLM, WebhookSink

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.environ.get("AGENTBUS_JAEGER_BIN"),
                       reason="needs AGENTBUS_JAEGER_BIN (make test-jaeger builds Jaeger and sets it)"),
]

SERVICES = {"agentbus-ingress", "agentbus-memory", "agentbus-reasoner", "agentbus-egress"}


async def test_jaeger_holds_one_tree_with_every_services_spans(infra: Infra, tmp_path: Path) -> None:
    ports = Ports.free()
    jaeger = jaeger_proc(os.environ["AGENTBUS_JAEGER_BIN"], ports, tmp_path / "logs")
    await jaeger.start()
    llm = await FakeLLM().start()
    sink = await WebhookSink({"acme": secret_for("acme"), "globex": secret_for("globex")}).start()
    assert sink.server is not None
    query = f"http://127.0.0.1:{ports.tracing}"
    try:
        await jaeger.wait_ready(60)
        async with run_platform(infra, base_config(sink.server.url, llm.base_url),
                                env={"AGENTBUS_OTLP_ENDPOINT": f"http://127.0.0.1:{ports.otlp}"},
                                services=("ingress", "memory", "reasoner", "egress")) as p:
            conv = f"jg-{uuid.uuid4().hex[:6]}"
            body, headers = signed_request(secret_for("acme"), {"conversation": conv, "sender": {"id": "u"},
                                                                "text": "find me in jaeger"})
            async with httpx.AsyncClient() as c:
                r = await c.post(f"{p.ingress_url}/v1/webhooks/acme", content=body, headers=headers)
                assert r.status_code == 202
                await sink.wait_for(lambda m: m["conversation"] == conv)
                trace = await _wait_for_tree(c, query)
    finally:
        await sink.stop()
        await llm.stop()
        await jaeger.stop()

    services = {trace["processes"][s["processID"]]["serviceName"] for s in trace["spans"]}
    assert SERVICES <= services, services
    ids = {s["spanID"] for s in trace["spans"]}
    roots = [s for s in trace["spans"] if not _parents(s)]
    assert [s["operationName"] for s in roots] == ["webhook receive"], "one root: the webhook"
    orphans = [s["operationName"] for s in trace["spans"] if any(pid not in ids for pid in _parents(s))]
    assert not orphans, f"every span's parent is in the same trace: {orphans}"
    names = {s["operationName"] for s in trace["spans"]}
    for expected in (f"{topic_of(p.prefix, MessageReceived)} process",
                     f"{topic_of(p.prefix, ContextAssembled)} process", "chat fake-model", "push webhook"):
        assert expected in names, (expected, sorted(names))


def _parents(span: dict[str, Any]) -> list[str]:
    return [ref["spanID"] for ref in span.get("references", []) if ref.get("refType") == "CHILD_OF"]


async def _wait_for_tree(c: httpx.AsyncClient, query: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """The trace of the one webhook sent, through Jaeger's HTTP query API (search by service and operation, then
    the trace by id), once every service's spans and the push have been exported to it."""
    deadline = time.monotonic() + timeout_s
    trace: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = await c.get(f"{query}/api/traces", params={"service": "agentbus-ingress", "operation": "webhook receive",
                                                     "lookback": "1h", "limit": "10"})
        if r.status_code == 200 and r.json().get("data"):
            [found] = r.json()["data"]
            r = await c.get(f"{query}/api/traces/{found['traceID']}")
            assert r.status_code == 200, r.text
            [trace] = r.json()["data"]
            services = {trace["processes"][s["processID"]]["serviceName"] for s in trace["spans"]}
            ids = {s["spanID"] for s in trace["spans"]}
            complete = all(pid in ids for s in trace["spans"] for pid in _parents(s))
            if SERVICES <= services and complete and any(s["operationName"] == "push webhook" for s in trace["spans"]):
                return trace
        await asyncio.sleep(0.5)
    seen = sorted(s["operationName"] for s in trace.get("spans", []))
    raise AssertionError(f"no complete trace in Jaeger within {timeout_s:.0f}s; last seen: {seen}")
