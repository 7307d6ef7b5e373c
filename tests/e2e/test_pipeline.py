"""The whole pipeline as processes: signed webhook in, signed push out, memory across turns and tenants."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from agentbus.cli.tools import signed_request
from tests.support.platform import Infra, Platform, base_config, run_platform, secret_for
from tests.support.servers import FakeLLM, WebhookSink

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def platform(infra: Infra, llm: FakeLLM, sink: WebhookSink) -> AsyncIterator[Platform]:
    assert sink.server is not None
    async with run_platform(infra, base_config(sink.server.url, llm.base_url)) as p:
        yield p


async def send(p: Platform, channel: str, conversation: str, text: str, msg_id: str | None = None,
               sender: str = "alice") -> httpx.Response:
    body, headers = signed_request(
        secret_for(channel), {"conversation": conversation, "sender": {"id": sender}, "text": text}, msg_id
    )
    async with httpx.AsyncClient() as c:
        return await c.post(f"{p.ingress_url}/v1/webhooks/{channel}", content=body, headers=headers)


async def test_message_in_push_out_with_memory_and_tenant_isolation(
    platform: Platform, llm: FakeLLM, sink: WebhookSink
) -> None:
    conv = f"c-{uuid.uuid4().hex[:6]}"
    secret_word = f"zebra-{uuid.uuid4().hex[:6]}"
    r = await send(platform, "acme", conv, f"My favourite animal is the {secret_word}")
    assert r.status_code == 202, r.text
    first = await sink.wait_for(lambda m: m["conversation"] == conv and m["_channel"] == "acme")
    assert first[0]["text"] == f"answer: My favourite animal is the {secret_word}"

    r = await send(platform, "acme", conv, "What is my favourite animal?")
    assert r.status_code == 202
    await sink.wait_for(lambda m: m["conversation"] == conv and "What is my" in m["text"])
    [call] = llm.calls_with("What is my favourite animal?")
    history = [m["content"] for m in call["messages"] if m["role"] != "system"]
    assert any(secret_word in h for h in history[:-1]), "the first turn is in the second message's context"

    # another tenant asking about the same thing never sees acme's turn, neither as history nor as memory
    other = f"c-{uuid.uuid4().hex[:6]}"
    r = await send(platform, "globex", other, f"Tell me about the {secret_word}")
    assert r.status_code == 202
    await sink.wait_for(lambda m: m["conversation"] == other and m["_channel"] == "globex")
    [gcall] = llm.calls_with(f"Tell me about the {secret_word}")
    context = " ".join(m["content"] for m in gcall["messages"][:-1])
    assert "favourite animal" not in context
    assert not sink.rejected


async def test_semantic_memory_recalls_other_conversations_of_the_same_tenant_only(
    platform: Platform, llm: FakeLLM, sink: WebhookSink
) -> None:
    word = f"okapi-{uuid.uuid4().hex[:6]}"
    first, later, foreign = (f"{k}-{uuid.uuid4().hex[:6]}" for k in ("sem", "sem2", "sem3"))
    assert (await send(platform, "acme", first, f"Our office mascot is the {word}")).status_code == 202
    await sink.wait_for(lambda m: m["conversation"] == first)
    assert (await send(platform, "acme", later, f"Our office mascot is the {word}?")).status_code == 202
    await sink.wait_for(lambda m: m["conversation"] == later)
    [call] = llm.calls_with(f"Our office mascot is the {word}?")
    notes = [m["content"] for m in call["messages"] if m["role"] == "system" and "Relevant memories" in m["content"]]
    assert notes and f"Our office mascot is the {word}" in notes[0], "recalled from the other conversation"
    assert (await send(platform, "globex", foreign, f"Our office mascot is the {word}!")).status_code == 202
    await sink.wait_for(lambda m: m["conversation"] == foreign)
    [gcall] = llm.calls_with(f"Our office mascot is the {word}!")
    assert not any(word in m["content"] for m in gcall["messages"][:-1]), "another tenant's memory never leaks"


async def test_duplicate_webhook_gives_exactly_one_push(platform: Platform, sink: WebhookSink) -> None:
    conv = f"dup-{uuid.uuid4().hex[:6]}"
    msg_id = f"msg_{uuid.uuid4().hex}"
    responses = [await send(platform, "acme", conv, "only once please", msg_id) for _ in range(3)]
    assert [r.status_code for r in responses] == [202, 202, 202]
    assert responses[0].headers["x-agentbus-outcome"] == "published"
    assert {r.headers["x-agentbus-outcome"] for r in responses[1:]} == {"duplicate"}
    await sink.wait_for(lambda m: m["conversation"] == conv)
    # a later message in the same conversation arriving proves the duplicates had their chance to show up
    await send(platform, "acme", conv, "and a second message")
    await sink.wait_for(lambda m: m["conversation"] == conv and "second" in m["text"])
    pushes = [m for m in sink.received if m["conversation"] == conv and "only once" in m["text"]]
    assert len(pushes) == 1


async def test_bad_requests_are_rejected_and_publish_nothing(platform: Platform) -> None:
    body, headers = signed_request(secret_for("acme"), {"conversation": "x", "sender": {"id": "a"}, "text": "hi"})
    async with httpx.AsyncClient() as c:
        url = f"{platform.ingress_url}/v1/webhooks"
        bad_sig = {**headers, "webhook-signature": "v1,AAAA"}
        stale = {**headers, "webhook-timestamp": "1000000000"}
        cases = {
            "unknown channel": await c.post(f"{url}/nope", content=body, headers=headers),
            "bad signature": await c.post(f"{url}/acme", content=body, headers=bad_sig),
            "stale": await c.post(f"{url}/acme", content=body, headers=stale),
            "other tenant's secret": await c.post(f"{url}/globex", content=body, headers=headers),
            "too large": await c.post(f"{url}/acme", content=b"x" * 2_000_000, headers=headers),
        }
        bad_json, bad_json_headers = signed_request(secret_for("acme"), {"a": 1})
        cases["wrong shape"] = await c.post(f"{url}/acme", content=bad_json, headers=bad_json_headers)
    expected = {"unknown channel": 404, "bad signature": 401, "stale": 401, "other tenant's secret": 401,
                "too large": 413, "wrong shape": 422}
    assert {k: r.status_code for k, r in cases.items()} == expected
    for r in cases.values():
        assert r.json()["error"]
    assert "stale" in cases["stale"].json()["error"]


async def test_health_ready_metrics_on_every_service(platform: Platform) -> None:
    async with httpx.AsyncClient() as c:
        for svc in platform.procs:
            base = platform.url_of(svc)
            assert (await c.get(f"{base}/healthz")).status_code == 200
            ready = await c.get(f"{base}/readyz")
            assert ready.status_code == 200 and ready.json()["ready"] is True
            m = await c.get(f"{base}/metrics")
            assert m.status_code == 200 and "agentbus_events_produced_total" in m.text


async def test_sigterm_drains_commits_and_exits_zero(platform: Platform, sink: WebhookSink) -> None:
    """Graceful shutdown: each service stops taking work, finishes what it has, commits, and exits 0;
    messages sent meanwhile are answered once the service is back."""
    conv = f"term-{uuid.uuid4().hex[:6]}"
    for svc in ("egress", "reasoner", "memory", "ingress"):
        await send(platform, "acme", conv, f"before stopping {svc}")
        code = await platform.procs[svc].stop()  # SIGTERM
        assert code == 0, f"{svc} exited with {code}"
        if svc != "ingress":
            await send(platform, "acme", conv, f"while {svc} is stopped")
        await platform.stack.start_service(svc)
    sent = []
    for s in ("egress", "reasoner", "memory", "ingress"):
        sent.append(f"before stopping {s}")
        if s != "ingress":
            sent.append(f"while {s} is stopped")
    for t in sent:
        await sink.wait_for(lambda m, t=t: m["conversation"] == conv and t in m["text"], timeout=60)
    pushes = [m for m in sink.received if m["conversation"] == conv]
    assert len(pushes) == len(sent), "each message answered once"
    assert [next(t for t in sent if m["text"].endswith(t)) for m in pushes] == sent, "in the order sent"
