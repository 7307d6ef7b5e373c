"""The consumer runner against the real broker: ordering per key, concurrency across keys, retries,
dead-lettering of a poison event without blocking its partition, commits only of finished work."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Sequence

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import REGISTRY

from agentbus.bus import ConsumerRunner, PermanentError, Producer
from agentbus.bus.kafka import ensure_topics
from agentbus.events import Chat, Event, MessageReceived, MessageReceivedData, Sender, parse_event, utcnow
from agentbus.settings import Settings
from agentbus.topics import all_topics, dead_letter_topic, topic_of
from tests.support.platform import Infra, unique_prefix

pytestmark = [pytest.mark.integration, pytest.mark.broker]


def settings(infra: Infra, **kw: object) -> Settings:
    opts: dict[str, object] = dict(
        kafka_bootstrap_servers=infra.bootstrap, topic_prefix=unique_prefix(), topic_partitions=2,
        session_timeout_ms=2000, heartbeat_interval_ms=500, retry_initial_s=0.01, retry_max_s=0.05,
        commit_interval_s=0.05,
    )
    return Settings(**{**opts, **kw})


def msg(conv: str, text: str) -> Event:
    return MessageReceived.new(
        MessageReceivedData(channel="c", channel_type="webhook", agent="a", platform_message_id=text,
                            sender=Sender(id="u"), chat=Chat(id=conv), text=text, received_at=utcnow()),
        source="test", tenant="t", conversation=f"t/c/{conv}",
    )


async def run_until(runner: ConsumerRunner, cond, timeout: float = 30) -> None:
    await runner.start()
    task = asyncio.create_task(runner.run())
    try:
        async with asyncio.timeout(timeout):
            while not cond():
                await asyncio.sleep(0.02)
    finally:
        await runner.stop()
        await task
        await runner.close()


async def test_order_within_a_key_and_concurrency_across_keys(infra: Infra) -> None:
    s = settings(infra, max_in_flight=64)
    await ensure_topics(s, all_topics(s.topic_prefix))
    prod = Producer(s, "test")
    await prod.start()
    events = [msg(f"conv{k}", f"{k}:{i}") for i in range(5) for k in range(20)]
    await prod.publish(events)
    seen: dict[str, list[int]] = defaultdict(list)
    active = 0
    peak = 0
    gauge_peak = 0.0
    consumed = REGISTRY.get_sample_value("agentbus_events_consumed_total",
                                         {"type": "message.received", "outcome": "ok"}) or 0.0

    async def handler(e: Event) -> Sequence[Event]:
        nonlocal active, peak, gauge_peak
        active += 1
        peak = max(peak, active)
        gauge_peak = max(gauge_peak, REGISTRY.get_sample_value("agentbus_in_flight_events") or 0.0)
        await asyncio.sleep(0.05)  # a slow handler: with 20 keys these must overlap
        k, i = e.data.text.split(":")
        seen[k].append(int(i))
        active -= 1
        return []

    runner = ConsumerRunner(s, "test", prod, {MessageReceived: handler})
    await run_until(runner, lambda: sum(map(len, seen.values())) == len(events))
    await prod.stop()
    assert all(v == [0, 1, 2, 3, 4] for v in seen.values()), seen
    assert peak >= 10, f"keys were processed concurrently (peak {peak})"
    # the gauges, read when scraped, saw the events being handled, and nothing is left once finished
    assert gauge_peak >= peak, (gauge_peak, peak)
    assert REGISTRY.get_sample_value("agentbus_in_flight_events") == 0
    assert REGISTRY.get_sample_value("agentbus_buffered_events") == 0
    assert REGISTRY.get_sample_value("agentbus_events_consumed_total",
                                     {"type": "message.received", "outcome": "ok"}) == consumed + len(events)


async def test_poison_event_is_dead_lettered_and_does_not_block(infra: Infra) -> None:
    s = settings(infra, handler_attempts=3)
    await ensure_topics(s, all_topics(s.topic_prefix))
    prod = Producer(s, "test")
    await prod.start()
    conv = "same-conversation"
    events = [msg(conv, "ok-1"), msg(conv, "poison"), msg(conv, "ok-2"), msg("other", "perm")]
    await prod.publish(events)
    # a record that is not an event at all
    await prod.send_raw(topic_of(s.topic_prefix, MessageReceived), b"not json", b"t/c/garbage", [])
    done: list[str] = []
    calls: dict[str, int] = defaultdict(int)

    async def handler(e: Event) -> Sequence[Event]:
        calls[e.data.text] += 1
        if e.data.text == "poison":
            raise ValueError("this event always fails")
        if e.data.text == "perm":
            raise PermanentError("cannot ever work")
        done.append(e.data.text)
        return []

    runner = ConsumerRunner(s, "test", prod, {MessageReceived: handler})
    await run_until(runner, lambda: "ok-2" in done)
    assert done == ["ok-1", "ok-2"]
    assert calls["poison"] == 3 and calls["perm"] == 1

    # the dead-letter topic holds the poison, the permanent failure and the garbage, with reasons
    c = AIOKafkaConsumer(dead_letter_topic(s.topic_prefix), bootstrap_servers=infra.bootstrap,
                         auto_offset_reset="earliest", group_id=None)
    await c.start()
    letters = []
    async with asyncio.timeout(20):
        while len(letters) < 3:
            batch = await c.getmany(timeout_ms=500)
            letters += [parse_event(r.value) for rs in batch.values() for r in rs]
    await c.stop()
    await prod.stop()
    by_error = {d.data.error_type: d.data for d in letters}
    assert by_error["ValueError"].attempts == 3 and "always fails" in by_error["ValueError"].error
    assert by_error["PermanentError"].attempts == 1
    assert by_error["JSONDecodeError"].original_value == "not json"
    assert parse_event(by_error["ValueError"].original_value).data.text == "poison"


async def test_offsets_commit_only_finished_work(infra: Infra) -> None:
    s = settings(infra, topic_partitions=1)
    await ensure_topics(s, all_topics(s.topic_prefix))
    topic = topic_of(s.topic_prefix, MessageReceived)
    prod = Producer(s, "test")
    await prod.start()
    await prod.publish([msg("slow", "slow"), *[msg(f"k{i}", f"fast{i}") for i in range(5)]])
    release = asyncio.Event()
    finished: list[str] = []

    async def handler(e: Event) -> Sequence[Event]:
        if e.data.text == "slow":
            await release.wait()
        finished.append(e.data.text)
        return []

    group = f"g-{uuid.uuid4().hex[:6]}"
    runner = ConsumerRunner(s, "test", prod, {MessageReceived: handler}, group_id=group)
    await runner.start()
    task = asyncio.create_task(runner.run())
    async with asyncio.timeout(20):
        while len(finished) < 5:
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)  # several commit ticks pass
    tp = TopicPartition(topic, 0)
    probe = AIOKafkaConsumer(bootstrap_servers=infra.bootstrap, group_id=group, enable_auto_commit=False)
    await probe.start()
    committed_while_slow = await probe.committed(tp)
    release.set()
    async with asyncio.timeout(20):
        while "slow" not in finished:
            await asyncio.sleep(0.02)
    await runner.stop()
    await task
    await runner.close()
    committed_after = await probe.committed(tp)
    await probe.stop()
    await prod.stop()
    assert committed_while_slow in (None, 0), "the unfinished first offset holds the watermark"
    assert committed_after == 6


async def test_a_consumer_reads_both_versions_of_an_event_as_the_newest(infra: Infra) -> None:
    from agentbus.events import (
        InferenceCompleted,
        InferenceCompletedData,
        InferenceCompletedDataV3,
        InferenceCompletedV1,
        Usage,
    )
    from agentbus.topics import topics_of_type

    s = settings(infra)
    await ensure_topics(s, all_topics(s.topic_prefix))
    prod = Producer(s, "test")
    await prod.start()
    old = InferenceCompletedV1.new(
        InferenceCompletedData(agent="a", model="old", provider="p", prompt_tokens=1, completion_tokens=2),
        source="t", tenant="t", conversation="k",
    )
    new = InferenceCompleted.new(InferenceCompletedDataV3(agent="a", model="new", provider="p",
                                                          usage=Usage(input_tokens=3, output_tokens=4)),
                                 source="t", tenant="t", conversation="k")
    await prod.publish([old, new])
    got: list[Event] = []

    async def handler(e: Event) -> Sequence[Event]:
        got.append(e)
        return []

    topics = topics_of_type(s.topic_prefix, "inference.completed")
    assert len(topics) == 3  # v1, v2 and v3 (the one that seals the answer)
    runner = ConsumerRunner(s, "test", prod, {InferenceCompleted: handler})
    await run_until(runner, lambda: len(got) == 2)
    await prod.stop()
    assert {type(e) for e in got} == {InferenceCompleted}
    assert sorted((e.data.model, e.data.usage.output_tokens) for e in got) == [("new", 4), ("old", 2)]
