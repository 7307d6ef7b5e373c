"""The platform's bus on Apache Kafka itself (``make test-kafka``: three KRaft nodes, see
``tests/support/kafka_cluster.py``): its topics are created with three replicas and ``min.insync.replicas=2``,
and its idempotent producer loses, repeats and reorders nothing while the leader of the partitions is
SIGKILLed under it. On the embedded broker (``make test``) these are skipped: it has one node and no
idempotent producer.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from agentbus.bus import ConsumerRunner, Producer
from agentbus.bus.kafka import admin_client, ensure_topics
from agentbus.deadletters import read_topic
from agentbus.events import Chat, Event, MessageReceived, MessageReceivedData, Sender, parse_event, utcnow
from agentbus.settings import Settings
from agentbus.topics import all_topics, topic_of
from tests.support.kafka_cluster import KafkaCluster
from tests.support.platform import Infra, unique_prefix

pytestmark = [pytest.mark.integration, pytest.mark.broker]

DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs' config source: set on the topic itself (not a broker default)


@pytest.fixture
def kafka(infra: Infra) -> KafkaCluster:
    if infra.kafka is None:
        pytest.skip("runs on Apache Kafka (make test-kafka); the embedded broker is a single node")
    return infra.kafka


def msg(conv: str, text: str) -> Event:
    return MessageReceived.new(
        MessageReceivedData(channel="c", channel_type="webhook", agent="a", platform_message_id=text,
                            sender=Sender(id="u"), chat=Chat(id=conv), text=text, received_at=utcnow()),
        source="test", tenant="t", conversation=f"t/c/{conv}",
    )


async def described(s: Settings, topics: list[str]) -> list[dict[str, Any]]:
    """The topics as the broker describes them, once every partition has a leader (a topic just created reaches
    every broker's metadata a moment later)."""
    admin = await admin_client(s)
    try:
        async with asyncio.timeout(30):
            while True:
                found = await admin.describe_topics(topics)
                leaders = [p["leader"] for t in found for p in t["partitions"]]
                if len(leaders) == s.topic_partitions * len(topics) and all(n >= 0 for n in leaders):
                    return list(found)
                await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def test_topics_have_three_replicas_and_two_in_sync_at_least(infra: Infra, kafka: KafkaCluster) -> None:
    s = Settings(kafka_bootstrap_servers=infra.bootstrap, topic_prefix=unique_prefix(), topic_partitions=2)
    assert (s.topic_replication_factor, s.topic_min_insync_replicas, s.kafka_idempotent_producer) == (3, 2, True)
    topics = all_topics(s.topic_prefix)
    assert sorted(await ensure_topics(s, topics)) == topics
    replicas = {(t["topic"], p["partition"]): sorted(p["replicas"])
                for t in await described(s, topics) for p in t["partitions"]}
    admin = await admin_client(s)
    try:
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics])
    finally:
        await admin.close()
    assert len(replicas) == 2 * len(topics)
    assert set(map(tuple, replicas.values())) == {tuple(sorted(kafka.nodes))}, replicas
    min_isr = {res[3]: (value, source) for resp in configs for res in resp.resources
               for (name, value, _ro, source, *_rest) in res[4] if name == "min.insync.replicas"}
    assert min_isr == {t: ("2", DYNAMIC_TOPIC_CONFIG) for t in topics}


async def test_idempotent_producer_and_consumer_ride_out_a_sigkilled_leader(infra: Infra,
                                                                            kafka: KafkaCluster) -> None:
    """Events are published in order per conversation while a node leading some of the topic's partitions is
    SIGKILLed (and later restarted). The log holds each event exactly once, each conversation in order (the
    producer's retries of batches the dead leader may have written are de-duplicated by the broker), and the
    consumer runner handles every event, each conversation in order (a redelivery, at least once, is allowed:
    the handlers' processed-event records make it change nothing)."""
    s = Settings(kafka_bootstrap_servers=infra.bootstrap, topic_prefix=unique_prefix(), topic_partitions=3,
                 session_timeout_ms=2000, heartbeat_interval_ms=500, commit_interval_s=0.05)
    await ensure_topics(s, all_topics(s.topic_prefix))
    topic = topic_of(s.topic_prefix, MessageReceived)
    victim = min(p["leader"] for t in await described(s, [topic]) for p in t["partitions"])

    prod = Producer(s, "test")
    await prod.start()
    seen: dict[str, list[int]] = defaultdict(list)

    async def handler(e: Event) -> Sequence[Event]:
        k, i = e.data.text.split(":")
        seen[k].append(int(i))
        return []

    runner = ConsumerRunner(s, "test", prod, {MessageReceived: handler})
    await runner.start()
    consuming = asyncio.create_task(runner.run())
    keys, per_key = 30, 40
    try:
        for i in range(per_key):
            if i == per_key // 4:
                await kafka.kill(victim)  # mid-stream: in-flight batches to it must be retried elsewhere
            await prod.publish([msg(f"conv{k}", f"conv{k}:{i}") for k in range(keys)])
        async with asyncio.timeout(120):
            while sum(map(len, seen.values())) < keys * per_key:
                await asyncio.sleep(0.1)
        await asyncio.sleep(1)  # a repeat, if there were one, has time to arrive
    finally:
        await runner.stop()
        await consuming
        await runner.close()
        await prod.stop()
        if not kafka.nodes[victim].alive:
            await kafka.restart(victim)
        await kafka.wait_brokers(set(kafka.nodes))
    log: dict[str, list[int]] = defaultdict(list)
    for rec in await read_topic(s, topic, timeout_s=60):
        k, i = parse_event(rec.value).data.text.split(":")
        log[k].append(int(i))
    assert log == {f"conv{k}": list(range(per_key)) for k in range(keys)}
    assert {k: list(dict.fromkeys(v)) for k, v in seen.items()} == log
