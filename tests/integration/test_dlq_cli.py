"""``agentbus dlq list`` / ``agentbus dlq redrive`` against the real broker, run as a separate process.

The end-to-end case: the LLM refuses a request (HTTP 400, a permanent error), the reasoner dead-letters
the event; the operator fixes the cause and redrives the dead letter twice; exactly one reply is pushed.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from aiokafka.structs import ConsumerRecord

from agentbus.bus import Producer
from agentbus.bus.deadletter import dead_letter_event
from agentbus.bus.kafka import ensure_topics
from agentbus.cli import dlq
from agentbus.cli.tools import signed_request
from agentbus.config import Agent
from agentbus.events import Chat, Event, MessageReceived, MessageReceivedData, Sender, utcnow
from agentbus.settings import Settings
from agentbus.topics import all_topics, topic_for
from tests.support.platform import Infra, Platform, base_config, run_platform, secret_for, unique_prefix
from tests.support.servers import FakeLLM, WebhookSink

pytestmark = [pytest.mark.integration, pytest.mark.broker]


async def cli(infra: Infra, prefix: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "AGENTBUS_KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap, "AGENTBUS_TOPIC_PREFIX": prefix,
           "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentbus.cli", "dlq", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def list_json(infra: Infra, prefix: str, *args: str) -> list[dict[str, Any]]:
    code, out, err = await cli(infra, prefix, "list", "--json", *args)
    assert code == 0, err
    return orjson.loads(out)


async def read_topic(bootstrap: str, topic: str) -> list[ConsumerRecord]:
    return await dlq.read_topic(Settings(kafka_bootstrap_servers=bootstrap), topic)


# ---------------------------------------------------------------- the CLI on hand-made dead letters


def _record(topic: str, offset: int, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]) -> Any:
    return ConsumerRecord(topic, 0, offset, 0, 0, key, value, None, len(key or b""), len(value), headers)


def _msg(conv: str, text: str) -> Event:
    return MessageReceived.new(
        MessageReceivedData(channel="c", channel_type="webhook", agent="a", platform_message_id=text,
                            sender=Sender(id="u"), chat=Chat(id=conv), text=text, received_at=utcnow()),
        source="test", tenant="t", conversation=f"t/c/{conv}",
    )


@pytest.fixture
async def seeded(infra: Infra) -> AsyncIterator[tuple[str, dict[str, Event]]]:
    """A fresh prefix with three dead letters: two from memory (one unparseable, binary), one from egress."""
    prefix = unique_prefix()
    s = Settings(kafka_bootstrap_servers=infra.bootstrap, topic_prefix=prefix, topic_partitions=2)
    await ensure_topics(s, all_topics(prefix))
    received = topic_for(prefix, "message.received")
    ev = _msg("conv-1", "hello")
    headers = [("event-id", str(ev.id).encode()), ("traceparent", b"00-abc-def-01")]
    letters = {
        "memory": dead_letter_event("memory", _record(received, 7, ev.to_bytes(), b"t/c/conv-1", headers), ev,
                                    ValueError("boom"), 5),
        "garbage": dead_letter_event("memory", _record(received, 8, b"\xff\xfe not json", b"t/c/bin", []), None,
                                     ValueError("unparseable"), 1),
    }
    reply_topic = topic_for(prefix, "reply.generated")
    ev2 = _msg("conv-2", "other")
    letters["egress"] = dead_letter_event("egress", _record(reply_topic, 3, ev2.to_bytes(), b"t/c/conv-2", []), ev2,
                                          RuntimeError("push refused"), 5)
    prod = Producer(s, "test")
    await prod.start()
    await prod.publish(list(letters.values()))
    await prod.stop()
    yield prefix, letters


async def test_list_shows_every_dead_letter_with_filters(infra: Infra, seeded: tuple[str, dict[str, Event]]) -> None:
    prefix, letters = seeded
    rows = await list_json(infra, prefix)
    assert {r["id"] for r in rows} == {str(e.id) for e in letters.values()}
    mem = next(r for r in rows if r["id"] == str(letters["memory"].id))
    assert mem["service"] == "memory" and mem["original_type"] == "message.received"
    assert (mem["original_topic"], mem["original_partition"], mem["original_offset"]) == (
        topic_for(prefix, "message.received"), 0, 7)
    assert mem["attempts"] == 5 and mem["error"] == "boom" and mem["error_type"] == "ValueError"

    assert {r["id"] for r in await list_json(infra, prefix, "--service", "egress")} == {str(letters["egress"].id)}
    assert {r["id"] for r in await list_json(infra, prefix, "--type", "message.received")} == {
        str(letters["memory"].id), str(letters["egress"].id)}

    code, out, _ = await cli(infra, prefix, "list")
    assert code == 0
    assert "3 dead letter(s)" in out and str(letters["garbage"].id) in out and "(unparseable)" in out
    assert "attempts" in out and "boom" in out


async def test_list_of_a_prefix_without_dead_letters_is_empty(infra: Infra) -> None:
    assert await list_json(infra, unique_prefix()) == []


async def test_redrive_needs_a_selection_and_known_ids(infra: Infra, seeded: tuple[str, dict[str, Event]]) -> None:
    prefix, _ = seeded
    received = topic_for(prefix, "message.received")
    code, _, err = await cli(infra, prefix, "redrive")
    assert code == 2 and "--all" in err
    code, _, err = await cli(infra, prefix, "redrive", "--id", str(uuid.uuid4()))
    assert code == 1 and "no such dead letter" in err
    code, out, _ = await cli(infra, prefix, "redrive", "--all", "--dry-run")
    assert code == 0 and "would be redriven" in out and out.count("would redrive") == 3
    assert await read_topic(infra.bootstrap, received) == [], "a dry run publishes nothing"


async def test_redrive_restores_the_original_record(infra: Infra, seeded: tuple[str, dict[str, Event]]) -> None:
    prefix, letters = seeded
    code, out, err = await cli(infra, prefix, "redrive", "--type", "message.received")
    assert code == 0, err
    assert "redriven: 2" in out  # the two parseable ones; the garbage has no type
    code, out, err = await cli(infra, prefix, "redrive", "--id", str(letters["garbage"].id))
    assert code == 0, err

    received = await read_topic(infra.bootstrap, topic_for(prefix, "message.received"))
    replies = await read_topic(infra.bootstrap, topic_for(prefix, "reply.generated"))
    assert len(received) == 2 and len(replies) == 1
    by_key = {r.key: r for r in received}
    good = by_key[b"t/c/conv-1"]
    dle = letters["memory"]
    original = base64.b64decode(dle.data.original_value[7:]) if dle.data.original_value.startswith("base64:") \
        else dle.data.original_value.encode()
    assert good.value == original
    assert dict(good.headers) == {"event-id": dle.data.original_headers["event-id"].encode(),
                                  "traceparent": b"00-abc-def-01", "redriven-from": str(dle.id).encode()}
    binary = by_key[b"t/c/bin"]
    assert binary.value == b"\xff\xfe not json", "binary values survive the round trip through base64"
    assert dict(binary.headers) == {"redriven-from": str(letters["garbage"].id).encode()}
    assert replies[0].key == b"t/c/conv-2" and replies[0].value == letters["egress"].data.original_value.encode()


# ---------------------------------------------------------------- redrive through the running platform


@pytest.fixture(scope="module")
async def platform(infra: Infra, llm: FakeLLM, sink: WebhookSink) -> AsyncIterator[Platform]:
    assert sink.server is not None
    async with run_platform(infra, base_config(sink.server.url, llm.base_url),
                            services=("ingress", "memory", "reasoner", "egress")) as p:
        yield p


def calls_answering(llm: FakeLLM, text: str) -> int:
    """LLM calls whose input (the last user message) is ``text``."""
    return sum(1 for c in llm.calls if [m for m in c["messages"] if m["role"] == "user"][-1]["content"] == text)


async def send(p: Platform, conversation: str, text: str) -> None:
    body, headers = signed_request(secret_for("acme"), {"conversation": conversation, "sender": {"id": "u"},
                                                        "text": text})
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{p.ingress_url}/v1/webhooks/acme", content=body, headers=headers)
    assert r.status_code == 202, r.text


async def test_redrive_twice_after_the_cause_is_fixed_pushes_once(
    infra: Infra, platform: Platform, llm: FakeLLM, sink: WebhookSink
) -> None:
    conv = f"dlq-{uuid.uuid4().hex[:6]}"
    text = f"please answer {uuid.uuid4().hex[:6]}"
    llm.fail_status = 400  # the provider refuses: a permanent error, dead-lettered at once
    try:
        await send(platform, conv, text)
        rows: list[dict[str, Any]] = []
        async with asyncio.timeout(30):
            while not rows:
                rows = await list_json(infra, platform.prefix, "--type", "context.assembled")
                await asyncio.sleep(0.3)
    finally:
        llm.fail_status = None
    [row] = rows
    assert row["service"] == "reasoner" and "400" in row["error"] and row["attempts"] == 1
    # the asker is not left in silence: the agent's apology is pushed, once, beside the dead letter
    [apology] = await sink.wait_for(lambda m: m["conversation"] == conv)
    assert apology["text"] == Agent(id="x").apology and len(sink.by_reply[apology["_webhook_id"]]) == 1
    calls_before = calls_answering(llm, text)

    for _ in range(2):
        code, out, err = await cli(infra, platform.prefix, "redrive", "--id", row["id"])
        assert code == 0 and "redriven: 1" in out, err
    await sink.wait_for(lambda m: m["conversation"] == conv and text in m["text"])
    # a later message of the same conversation is processed after both redriven copies in every service
    await send(platform, conv, "and then this")
    await sink.wait_for(lambda m: m["conversation"] == conv and "and then this" in m["text"])

    pushes = [m for m in sink.received if m["conversation"] == conv and text in m["text"]]
    assert len(pushes) == 1 and len(sink.by_reply[pushes[0]["_webhook_id"]]) == 1
    assert calls_answering(llm, text) - calls_before == 1, "the second redrive paid for no second LLM call"
    assert [r["id"] for r in await list_json(infra, platform.prefix)] == [row["id"]], "nothing failed again"
    assert [m["text"] for m in sink.received if m["conversation"] == conv].count(apology["text"]) == 1
    copies = [r for r in await read_topic(infra.bootstrap, topic_for(platform.prefix, "context.assembled", 2))
              if dict(r.headers).get("redriven-from") == row["id"].encode()]
    assert len(copies) == 2 and copies[0].value == copies[1].value
