"""One inbound message is one trace across the real processes, with correct parents."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from agentbus.cli.tools import signed_request
from tests.support.otlp import Collector, Span
from tests.support.platform import Infra, base_config, run_platform, secret_for
from tests.support.servers import FakeLLM, WebhookSink

pytestmark = pytest.mark.e2e


async def test_one_message_is_one_trace_tree(infra: Infra) -> None:
    collector = await Collector().start()
    llm = await FakeLLM().start()
    sink = await WebhookSink({"acme": secret_for("acme"), "globex": secret_for("globex")}).start()
    assert sink.server is not None
    try:
        async with run_platform(infra, base_config(sink.server.url, llm.base_url),
                                env={"AGENTBUS_OTLP_ENDPOINT": collector.url},
                                services=("ingress", "memory", "reasoner", "egress")) as p:
            conv = f"tr-{uuid.uuid4().hex[:6]}"
            body, headers = signed_request(secret_for("acme"), {"conversation": conv, "sender": {"id": "u"},
                                                                "text": "trace me"})
            async with httpx.AsyncClient() as c:
                r = await c.post(f"{p.ingress_url}/v1/webhooks/acme", content=body, headers=headers)
            assert r.status_code == 202
            await sink.wait_for(lambda m: m["conversation"] == conv)
            [root] = [s for s in await _wait_spans(collector, "webhook receive") if s.attributes.get(
                "agentbus.channel") == "acme"]
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                tree = [s for s in collector.spans if s.trace_id == root.trace_id]
                span_ids = {s.span_id for s in tree}
                complete = all(s.parent_id in span_ids for s in tree if s.parent_id)  # parents export later
                if {"agentbus-ingress", "agentbus-memory", "agentbus-reasoner", "agentbus-egress"} <= {
                        s.service for s in tree} and any(s.name.startswith("push") for s in tree) and sum(
                        s.name.endswith("publish") for s in tree) >= 5 and complete and _db_services(tree) >= {
                        "agentbus-ingress", "agentbus-memory", "agentbus-reasoner", "agentbus-egress"}:
                    break
                await asyncio.sleep(0.2)
    finally:
        await sink.stop()
        await llm.stop()
        await collector.stop()
    ids = {s.span_id for s in tree}
    assert root.parent_id == "", "the webhook span is the root"
    orphans = [s.name for s in tree if s is not root and s.parent_id not in ids]
    assert not orphans, f"every span's parent is in the same trace: {orphans}"
    names = {s.name for s in tree}
    prefix = p.prefix
    for expected in (f"{prefix}.message.received.v2 publish", f"{prefix}.message.received.v2 process",
                     f"{prefix}.context.assembled.v2 process", f"{prefix}.reply.generated.v3 process",
                     "chat fake-model", "embeddings", "push webhook"):
        assert expected in names, (expected, sorted(names))
    by_id = {s.span_id: s for s in tree}
    consume = next(s for s in tree if s.name == f"{prefix}.context.assembled.v2 process")
    assert by_id[consume.parent_id].name == f"{prefix}.context.assembled.v2 publish"
    assert by_id[consume.parent_id].service == "agentbus-memory" and consume.service == "agentbus-reasoner"
    # every service's batched statements are database spans in the message's trace
    assert _db_services(tree) == {"agentbus-ingress", "agentbus-memory", "agentbus-reasoner", "agentbus-egress"}
    for s in tree:
        if s.attributes.get("db.system.name") == "postgresql":
            assert s.name.startswith("postgresql ") and s.attributes["db.operation.batch.size"] >= 1
    chat = next(s for s in tree if s.name == "chat fake-model")
    assert chat.attributes["gen_ai.request.model"] == "fake-model"
    assert chat.attributes["gen_ai.usage.output_tokens"] > 0
    assert chat.attributes["gen_ai.response.finish_reasons"] == ["stop"]


def _db_services(tree: list[Span]) -> set[str]:
    return {s.service for s in tree if s.attributes.get("db.system.name") == "postgresql"}


async def _wait_spans(collector: Collector, name: str, timeout: float = 20):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hits = [s for s in collector.spans if s.name == name]
        if hits:
            return hits
        await asyncio.sleep(0.2)
    raise TimeoutError(f"no span {name!r}")
