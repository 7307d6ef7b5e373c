"""Recall scope as users meet it, through the whole platform: one person's private fact reaches their other
chats and nobody else's, an agent in ``tenant`` scope shares it, the model reads who said it, and with the
embeddings server stopped answers still come, from history only, counted, and indexed once it is back."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from agentbus.cli.tools import signed_request
from tests.support.platform import Infra, Platform, base_config, run_platform, secret_for
from tests.support.servers import FakeLLM, WebhookSink
from tests.support.tcpproxy import TcpProxy

pytestmark = pytest.mark.e2e
CHANNELS = ("acme", "acme-shared", "globex")


def scoped_config(sink_url: str, llm_url: str) -> dict[str, Any]:
    """acme's own channel answers with the default agent (``user`` scope); ``acme-shared`` of the same tenant
    with a librarian that recalls the whole tenant's memories."""
    doc = base_config(sink_url, llm_url)
    doc["agents"].append({"id": "librarian", "system_prompt": "You share what the team knows.", "model": "fake",
                          "memory": {"history_turns": 10, "recall_top_k": 10, "recall_scope": "tenant"}})
    doc["channels"].append({"id": "acme-shared", "type": "webhook", "tenant": "acme", "agent": "librarian",
                            "secret": {"env": "TEST_SECRET_ACME_SHARED", "default": secret_for("acme-shared")},
                            "push_url": f"{sink_url}/push/acme-shared"})
    return doc


@pytest.fixture(scope="module")
async def embeddings(infra: Infra) -> AsyncIterator[TcpProxy]:
    """The session's embeddings server behind a proxy this module can stop and start."""
    target = urlsplit(infra.embeddings_url)
    assert target.hostname and target.port
    proxy = await TcpProxy(target.hostname, target.port).start()
    yield proxy
    await proxy.stop()


@pytest.fixture(scope="module")
async def sink() -> AsyncIterator[WebhookSink]:
    s = await WebhookSink({c: secret_for(c) for c in CHANNELS}).start()
    yield s
    await s.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, llm: FakeLLM, sink: WebhookSink, embeddings: TcpProxy) -> AsyncIterator[Platform]:
    assert sink.server is not None
    env = {"AGENTBUS_EMBEDDINGS_URL": f"http://127.0.0.1:{embeddings.port}/v1",
           "AGENTBUS_EMBEDDINGS_TIMEOUT_S": "3", "AGENTBUS_EMBEDDINGS_PAUSE_S": "1",
           "AGENTBUS_EMBEDDINGS_RETRY_S": "0.5"}
    async with run_platform(infra, scoped_config(sink.server.url, llm.base_url), env=env) as p:
        yield p


async def ask(p: Platform, sink: WebhookSink, channel: str, chat: str, sender: tuple[str, str],
              text: str) -> None:
    body, headers = signed_request(secret_for(channel), {"conversation": chat, "text": text,
                                                         "sender": {"id": sender[0], "name": sender[1]}})
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{p.ingress_url}/v1/webhooks/{channel}", content=body, headers=headers)
    assert r.status_code == 202, r.text
    await sink.wait_for(lambda m: m["conversation"] == chat and m["_channel"] == channel and text in m["text"])


def model_call(llm: FakeLLM, text: str) -> dict[str, Any]:
    [call] = llm.calls_with(text)
    return call


def memories_note(call: dict[str, Any]) -> str:
    notes = [m["content"] for m in call["messages"] if m["role"] == "system" and "Relevant memories" in m["content"]]
    return notes[0] if notes else ""


def people() -> tuple[tuple[str, str], tuple[str, str], str]:
    tag = uuid.uuid4().hex[:6]
    return (f"alice-{tag}", "Alice"), (f"bob-{tag}", "Bob"), tag


async def test_a_private_fact_reaches_its_owners_other_chats_only_and_a_tenant_agent_shares_it(
    platform: Platform, llm: FakeLLM, sink: WebhookSink
) -> None:
    alice, bob, tag = people()
    code = f"4417{tag}"
    await ask(platform, sink, "acme", f"dm-{alice[0]}", alice, f"my locker code is {code}")

    await ask(platform, sink, "acme", f"dm2-{alice[0]}", alice, f"what is my locker code? ({tag} a)")
    note = memories_note(model_call(llm, f"({tag} a)"))
    assert f"Alice in a direct chat on acme] my locker code is {code}" in note, note

    await ask(platform, sink, "acme", f"dm-{bob[0]}", bob, f"what is my locker code? ({tag} b)")
    bobs = model_call(llm, f"({tag} b)")
    assert not any(code in m["content"] for m in bobs["messages"]), "another user's private fact never leaks"

    await ask(platform, sink, "acme-shared", f"dm-shared-{bob[0]}", bob, f"what is Alice's locker code? ({tag} t)")
    shared = memories_note(model_call(llm, f"({tag} t)"))
    assert f"Alice in a direct chat on acme] my locker code is {code}" in shared, shared


async def until(check: Callable[[], Any], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("memory did not get there")
        await asyncio.sleep(0.2)


async def metric(p: Platform, name: str, labels: str) -> float:
    async with httpx.AsyncClient() as c:
        text = (await c.get(f"{p.url_of('memory')}/metrics")).text
    lines = [ln for ln in text.splitlines() if ln.startswith(f"{name}{{{labels}}}")]
    return float(lines[0].split()[-1]) if lines else 0.0


async def test_embeddings_down_answers_from_history_and_indexes_the_turn_when_back(
    platform: Platform, llm: FakeLLM, sink: WebhookSink, embeddings: TcpProxy
) -> None:
    alice, _, tag = people()
    chat = f"dm-{alice[0]}"
    await ask(platform, sink, "acme", chat, alice, f"my desk is number {tag}")
    before = await metric(platform, "agentbus_recall_skipped_total", 'reason="embeddings_unavailable"')
    await embeddings.stop()
    try:
        await ask(platform, sink, "acme", chat, alice, f"the bike shed is blue ({tag} down)")
        call = model_call(llm, f"({tag} down)")
        assert memories_note(call) == ""
        assert any(f"my desk is number {tag}" in m["content"] for m in call["messages"][:-1]), "history is sent"
        assert await metric(platform, "agentbus_recall_skipped_total", 'reason="embeddings_unavailable"') > before
    finally:
        await embeddings.start()

    async def indexed() -> bool:
        async with httpx.AsyncClient() as c:
            r = await c.post(f"{platform.url_of('memory')}/v1/recall",
                             json={"tenant": "acme", "text": f"the bike shed is blue ({tag} down)", "limit": 5})
        return r.status_code == 200 and any(f"({tag} down)" in m["text"] and m["sender"] == alice[0]
                                            for m in r.json()["matches"])

    await until(indexed)  # the deferred turn got its vector, with its sender, once the server was back
    assert await metric(platform, "agentbus_vectors_deferred_total", 'outcome="indexed"') >= 1
