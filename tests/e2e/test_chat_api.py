"""The chat API through the running platform, with the official ``openai`` client as the caller.

Two ingress replicas take requests; whichever partition a conversation's reply lands on, the replica holding
the request answers it. Answers go through memory (the next question's prompt holds them), the reasoner and
egress (delivered without a push, nothing dead-lettered), are one trace from the chat API's span, stream as
OpenAI chunks with the text of a non-streamed answer, and a request that waits too long is a 504 whose
answer still lands in memory."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from agentbus.eventlog import read
from agentbus.events import DeliveryCompleted, MessageReceived, ReplyGenerated
from agentbus.settings import Settings
from agentbus.topics import dead_letter_topic, topics_of_type
from tests.support.keys import platform_keyring
from tests.support.otlp import Collector
from tests.support.platform import Infra, Platform, run_platform
from tests.support.remembered import until_remembered
from tests.support.servers import FakeLLM, content_text

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[FakeLLM]:
    f = await FakeLLM(stream_delay_s=0.05).start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def slow_llm() -> AsyncIterator[FakeLLM]:
    f = await FakeLLM(reply_prefix="late: ", delay_s=3.0).start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def collector() -> AsyncIterator[Collector]:
    c = await Collector().start()
    yield c
    await c.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, llm: FakeLLM, slow_llm: FakeLLM, collector: Collector) -> AsyncIterator[Platform]:
    config: dict[str, Any] = {
        "tenants": [{"id": "acme"}, {"id": "globex"}],
        "agents": [{"id": "assistant", "model": "fake", "memory": {"history_turns": 10, "recall_top_k": 0}},
                   {"id": "slowpoke", "model": "slow", "memory": {"history_turns": 10, "recall_top_k": 0}}],
        "models": [{"name": "fake", "base_url": llm.base_url, "model": "fake-model", "timeout_s": 10},
                   {"name": "slow", "base_url": slow_llm.base_url, "model": "slow-model", "timeout_s": 10}],
        "channels": [
            {"id": "acme-chat", "type": "api", "tenant": "acme", "agent": "assistant"},
            {"id": "acme-slow", "type": "api", "tenant": "acme", "agent": "slowpoke", "reply_timeout_s": 1},
        ],
    }
    env = {"AGENTBUS_OTLP_ENDPOINT": collector.url, "AGENTBUS_REASONER_STREAM_INTERVAL_S": "0.05"}
    async with run_platform(infra, config, env=env, services=("ingress", "memory", "reasoner", "egress")) as p:
        await p.stack.start_replica("ingress", "1")
        yield p


async def token(infra: Infra, p: Platform, tenant: str, role: str) -> str:
    env = {**os.environ, **infra.env, "AGENTBUS_TOPIC_PREFIX": p.prefix, "AGENTBUS_DB_SCHEMA_SUFFIX": p.schema_suffix,
           "AGENTBUS_CONFIG_FILE": str(p.stack.config_file)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentbus.cli", "tokens", "create", "--name", f"chat-{tenant}", "--tenant", tenant,
        "--role", role, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode().strip()


def clients(p: Platform, key: str) -> list[openai.AsyncOpenAI]:
    urls = [p.ingress_url, f"http://127.0.0.1:{p.stack.replica_ports['ingress-1']}"]
    return [openai.AsyncOpenAI(base_url=f"{u}/v1", api_key=key, max_retries=0, timeout=60) for u in urls]


async def events_of(p: Platform, *types: str) -> list[Any]:
    s = Settings(kafka_bootstrap_servers=p.stack.service_env["AGENTBUS_KAFKA_BOOTSTRAP_SERVERS"],
                 topic_prefix=p.prefix)
    async with platform_keyring(p) as keys:
        return [logged.event for logged in await read(s, [t for ty in types for t in topics_of_type(p.prefix, ty)],
                                                      keyring=keys)]


async def test_two_replicas_answer_every_conversation_through_memory_and_egress(
        infra: Infra, platform: Platform, llm: FakeLLM, collector: Collector) -> None:
    key = await token(infra, platform, "acme", "operator")
    replicas = clients(platform, key)
    users = [f"user-{uuid.uuid4().hex[:6]}" for _ in range(6)]  # conversations on every partition

    async def ask(n: int, user: str, text: str) -> str:
        resp = await replicas[n % 2].chat.completions.create(
            model="assistant", user=user, messages=[{"role": "user", "content": text}])
        assert resp.object == "chat.completion" and resp.model == "assistant"
        return resp.choices[0].message.content or ""

    answers = await asyncio.gather(*(ask(n, u, f"first question of {u}") for n, u in enumerate(users)))
    assert answers == [f"answer: first question of {u}" for u in users]
    # the second question of a conversation, on the other replica: memory gave the model the first turn
    await until_remembered(platform, "acme", users[0], f"answer: first question of {users[0]}")
    assert await ask(1, users[0], "and the second?") == "answer: and the second?"
    [call] = llm.calls_with("and the second?")
    history = [(m["role"], content_text(m["content"])) for m in call["messages"]]
    assert ("user", f"first question of {users[0]}") in history
    assert ("assistant", f"answer: first question of {users[0]}") in history

    # egress recorded every reply as delivered (no push for an api channel), and nothing was dead-lettered
    replies = [e for e in await events_of(platform, ReplyGenerated.TYPE) if e.data.channel == "acme-chat"]
    deadline = time.monotonic() + 30
    while True:
        done = {e.data.reply_id: e.data.status for e in await events_of(platform, DeliveryCompleted.TYPE)}
        if all(r.id in done for r in replies) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    assert len(replies) == 7 and {done.get(r.id) for r in replies} == {"delivered"}
    s = Settings(kafka_bootstrap_servers=infra.bootstrap, topic_prefix=platform.prefix)
    assert await read(s, [dead_letter_topic(platform.prefix)]) == []

    # one trace from the chat API's span to the model call
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        roots = [sp for sp in collector.spans if sp.name == "chat completions" and sp.service == "agentbus-ingress"]
        model_calls = {sp.trace_id for sp in collector.spans if sp.name == "chat fake-model"}
        if any(r.trace_id in model_calls for r in roots):
            break
        await asyncio.sleep(0.2)
    assert any(r.trace_id in model_calls and r.parent_id == "" for r in roots)


async def test_a_stream_has_the_text_of_the_answer_in_pieces(infra: Infra, platform: Platform) -> None:
    key = await token(infra, platform, "acme", "operator")
    question = "please stream a rather long answer to this question of many words"
    for replica in clients(platform, key):
        stream = await replica.chat.completions.create(
            model="assistant", user=f"streamer-{uuid.uuid4().hex[:6]}", stream=True,
            messages=[{"role": "user", "content": question}])
        chunks = [c async for c in stream]
        pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
        assert "".join(pieces) == f"answer: {question}"
        assert len(pieces) >= 2 and chunks[-1].choices[0].finish_reason == "stop"


async def test_another_tenants_token_is_refused_and_nothing_is_published(infra: Infra, platform: Platform) -> None:
    key = await token(infra, platform, "globex", "admin")
    marker = f"globex-asks-{uuid.uuid4().hex[:6]}"
    for replica in clients(platform, key):
        with pytest.raises(openai.NotFoundError):
            await replica.chat.completions.create(model="assistant", messages=[{"role": "user", "content": marker}])
    assert not [e for e in await events_of(platform, MessageReceived.TYPE) if e.data.text == marker]


async def test_a_request_that_waits_too_long_is_a_504_and_its_answer_is_remembered(
        infra: Infra, platform: Platform, slow_llm: FakeLLM) -> None:
    key = await token(infra, platform, "acme", "operator")
    replica = clients(platform, key)[0]
    user = f"patient-{uuid.uuid4().hex[:6]}"
    with pytest.raises(openai.InternalServerError) as caught:
        await replica.chat.completions.create(model="slowpoke", user=user,
                                              messages=[{"role": "user", "content": "are you slow?"}])
    assert caught.value.status_code == 504
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "reply_timeout"
    deadline = time.monotonic() + 30
    while not [e for e in await events_of(platform, ReplyGenerated.TYPE)
               if e.data.channel == "acme-slow" and e.data.text == "late: are you slow?"]:
        assert time.monotonic() < deadline, "the late answer never came"
        await asyncio.sleep(0.3)
    slow_llm.delay_s = 0.0
    resp = await replica.chat.completions.create(model="slowpoke", user=user,
                                                 messages=[{"role": "user", "content": "now?"}])
    assert resp.choices[0].message.content == "late: now?"
    [call] = slow_llm.calls_with("now?")
    assert ("assistant", "late: are you slow?") in [(m["role"], content_text(m["content"])) for m in call["messages"]]
