"""The operator API's history reads through the running platform, on one platform for the module: a
message sent through a channel, then its conversation's turns (memory), its delivery (egress), its
inference (the reasoner) and its trace (the event log) read over HTTP with a viewer token; another
tenant's token gets 404 for each of them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.e2e.test_operator_api import cli, until
from tests.e2e.test_pipeline import send
from tests.support.platform import Infra, Platform, base_config, run_platform
from tests.support.servers import FakeLLM, WebhookSink

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def platform(infra: Infra, llm: FakeLLM, sink: WebhookSink) -> AsyncIterator[Platform]:
    assert sink.server is not None
    async with run_platform(infra, base_config(sink.server.url, llm.base_url)) as p:
        yield p


async def token(infra: Infra, p: Platform, tenant: str) -> dict[str, str]:
    code, out, err = await cli(infra, p, "tokens", "create", "--name", f"{tenant}-viewer", "--tenant", tenant,
                               "--role", "viewer", "--expires-days", "1")
    assert code == 0, err
    return {"authorization": f"Bearer {out.strip()}"}


async def test_a_message_is_read_back_as_turns_delivery_inference_and_trace(
    infra: Infra, platform: Platform, sink: WebhookSink
) -> None:
    acme, globex = await token(infra, platform, "acme"), await token(infra, platform, "globex")
    chat = f"room/{uuid.uuid4().hex[:6]}"  # a chat id with '/': the key is acme/acme/room/...
    key = f"acme/acme/{chat}"
    assert (await send(platform, "acme", chat, "How are the reads?")).status_code == 202
    await sink.wait_for(lambda m: m["conversation"] == chat)
    api = platform.ingress_url + "/api/v1/tenants"
    async with httpx.AsyncClient(timeout=30) as http:
        async def get(path: str, headers: dict[str, str] = acme, **params: Any) -> httpx.Response:
            return await http.get(f"{api}{path}", headers=headers, params=params)

        async def turns() -> list[dict[str, Any]]:
            resp = await get(f"/acme/conversations/{key}/turns")
            return list(resp.json()["items"]) if resp.status_code == 200 else []

        # the reply is remembered once memory consumed it: newest first
        assistant, user = await until(turns, lambda ts: len(ts) == 2)
        assert (user["role"], user["text"], assistant["role"]) == ("user", "How are the reads?", "assistant")
        assert assistant["text"] == "answer: How are the reads?"
        correlation = user["correlation_id"]
        assert correlation and assistant["correlation_id"] == correlation

        convs = (await get("/acme/conversations", limit=500)).json()["items"]
        [conv] = [c for c in convs if c["conversation"] == key]
        assert (conv["channel"], conv["chat"], conv["turns"]) == ("acme", chat, 2)

        async def delivery() -> list[dict[str, Any]]:
            return list((await get("/acme/deliveries", conversation=key, status="delivered")).json()["items"])

        [d] = await until(delivery, lambda ds: len(ds) == 1)
        assert (d["correlation_id"], d["channel"], d["attempts"]) == (correlation, "acme", 1)

        [inf] = (await get("/acme/inferences", correlation=correlation)).json()["items"]
        assert (inf["conversation"], inf["outcome"], inf["agent"]) == (key, "ok", "assistant")
        assert inf["prompt_tokens"] is not None and inf["latency_ms"] >= 0

        async def trace() -> dict[str, Any]:
            resp = await get(f"/acme/messages/{correlation}/trace", window_h=1)
            return dict(resp.json()) if resp.status_code == 200 else {}

        body = await until(trace, lambda b: "delivery.completed" in [e["type"] for e in b.get("events", [])])
        types = [e["type"] for e in body["events"]]
        assert types[0] == "message.received" and {"context.assembled", "reply.generated"} <= set(types)
        assert len(body["trace_ids"]) == 1 and all(e["trace_id"] == body["trace_ids"][0] for e in body["events"])
        assert all(e["conversation"] == key for e in body["events"])

        # another tenant's viewer: every one of these is a 404, under acme's path and under its own
        for path in (f"/acme/conversations/{key}/turns", "/acme/conversations", "/acme/deliveries",
                     "/acme/inferences", f"/acme/messages/{correlation}/trace",
                     f"/globex/conversations/{key}/turns", f"/globex/messages/{correlation}/trace"):
            resp = await get(path, headers=globex)
            assert resp.status_code == 404, (path, resp.text)
        for path in ("/globex/deliveries", "/globex/inferences", "/globex/conversations"):
            resp = await get(path, headers=globex)
            assert resp.status_code == 200 and correlation not in resp.text and chat not in resp.text
