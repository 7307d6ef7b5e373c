"""The faults of a chaos run on Apache Kafka (``--plan kafka``, ``make test-kafka``): three KRaft nodes,
replication 3 and ``min.insync.replicas=2``, idempotent producers.

- a broker SIGKILLed (not the one leading the metadata quorum), down a few seconds, started again on its data;
- the active controller (the quorum's leader, asked of the quorum) SIGKILLed, and started again;
- a consumer-group rebalance while the conversations are in flight: one more replica of memory and of the
  reasoner joins each group, then leaves it (each join and leave moves partitions between replicas);
- a topic at its retention limit: message.received keeps only its last seconds of records (``retention.ms``,
  segments rolled every second) for a while, so the broker deletes its oldest segments under the running
  platform; the records it deleted are counted from the partitions' start offsets.
"""

from __future__ import annotations

import asyncio

from agentbus.events import CATALOGUE
from agentbus.settings import Settings
from agentbus.topics import topic_for
from chaos.faults import Fault, Injector
from tests.support.kafka_cluster import KafkaCluster

DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs' config source of a value set on the topic itself


def _cluster(i: Injector) -> KafkaCluster:
    if i.kafka is None:
        raise LookupError("this fault needs Apache Kafka (AGENTBUS_TEST_KAFKA_LIBS; make test-kafka)")
    return i.kafka


def _settings(i: Injector) -> Settings:
    """The platform's own settings (its prefix, its cluster), for the admin requests the faults make."""
    env = {**i.services.env, **i.services.service_env}
    return Settings(kafka_bootstrap_servers=env["AGENTBUS_KAFKA_BOOTSTRAP_SERVERS"],
                    topic_prefix=env["AGENTBUS_TOPIC_PREFIX"])


async def _kill_and_restart(i: Injector, f: Fault, node_id: int, down_s: float, what: str) -> None:
    kafka = _cluster(i)
    await kafka.kill(node_id)
    i._say(f"SIGKILLed kafka node {node_id} ({what}); starting it again in {down_s:.0f}s on its data")
    await asyncio.sleep(down_s)
    await kafka.restart(node_id, wait=False)
    f.end()  # restarted, as a supervisor would: catching up is part of the recovery
    await kafka.wait_ready(node_id)
    i._say(f"kafka node {node_id} is a broker again")


def kill_broker(i: Injector, down_s: float = 5.0) -> Fault:
    async def act(f: Fault) -> None:
        kafka = _cluster(i)
        controller = await kafka.active_controller()
        victim = next(n for n in sorted(kafka.nodes) if n != controller and kafka.nodes[n].alive)
        f.note = f"node {victim} (the controller was node {controller})"
        await _kill_and_restart(i, f, victim, down_s, "a broker, not the controller")

    return Fault("Kafka broker SIGKILL + restart", act)


def kill_controller(i: Injector, down_s: float = 5.0) -> Fault:
    async def act(f: Fault) -> None:
        kafka = _cluster(i)
        controller = await kafka.active_controller()
        await kafka.kill(controller)
        successor = await kafka.active_controller()
        f.note = f"node {controller}; node {successor} took over"
        i._say(f"SIGKILLed the active controller, kafka node {controller}; node {successor} leads the quorum now")
        await asyncio.sleep(down_s)
        await kafka.restart(controller, wait=False)
        f.end()
        await kafka.wait_ready(controller)
        i._say(f"kafka node {controller} is a broker again")

    return Fault("Kafka active controller SIGKILL + restart", act)


def rebalance(i: Injector, services: tuple[str, ...] = ("memory", "reasoner"), hold_s: float = 10.0) -> Fault:
    async def act(f: Fault) -> None:
        started = await asyncio.gather(*(i.services.start_replica(s, "rebalance") for s in services))
        i._say(f"one more replica of {', '.join(services)} joined (rebalance); leaving in {hold_s:.0f}s")
        await asyncio.sleep(hold_s)
        await asyncio.gather(*(p.stop(30) for p in started))  # SIGTERM: drains, commits, leaves the group
        for p in started:
            del i.services.procs[p.name]
        f.note = f"{len(services)} groups joined and left"
        i._say("the extra replicas left (rebalance)")

    return Fault("consumer-group rebalance (replicas join, then leave)", act)


async def _start_offsets(s: Settings, topic: str) -> dict[int, int]:
    from aiokafka import AIOKafkaConsumer

    from agentbus.bus.kafka import client_options
    from agentbus.eventlog import partitions_of

    tps = await partitions_of(s, [topic])
    c = AIOKafkaConsumer(**client_options(s), group_id=None, enable_auto_commit=False)
    await c.start()
    try:
        return {tp.partition: off for tp, off in (await c.beginning_offsets(tps)).items()}
    finally:
        await c.stop()


async def _topic_configs(s: Settings, topic: str) -> dict[str, str]:
    """The configs set on the topic itself (AlterConfigs replaces them all, so they are sent with each change)."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from agentbus.bus.kafka import admin_client

    admin = await admin_client(s)
    try:
        resp = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    return {e[0]: e[1] for r in resp for res in r.resources for e in res[4] if e[3] == DYNAMIC_TOPIC_CONFIG}


async def _alter(s: Settings, topic: str, configs: dict[str, str]) -> None:
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from agentbus.bus.kafka import admin_client

    admin = await admin_client(s)
    try:
        resp = await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)])
    finally:
        await admin.close()
    errors = [(res[2], res[1]) for r in resp for res in r.resources if res[0] != 0]
    if errors:
        raise RuntimeError(f"altering {topic}'s configs failed: {errors}")


def retention_limit(i: Injector, seconds: float = 25.0, retention_s: float = 10.0,
                    event_type: str = "message.received") -> Fault:
    """The topic keeps only its last ``retention_s`` of records (in segments rolled every second) for
    ``seconds``: the broker deletes the segments older than that while the platform reads and writes it."""
    async def act(f: Fault) -> None:
        s = _settings(i)
        # the topic the platform writes now: the newest version of the event (older versions' topics stay empty)
        topic = topic_for(s.topic_prefix, event_type, max(v for t, v in CATALOGUE if t == event_type))
        before = await _start_offsets(s, topic)
        own = await _topic_configs(s, topic)
        limit = {"retention.ms": str(int(retention_s * 1000)), "segment.ms": "1000"}
        await _alter(s, topic, {**own, **limit})
        i._say(f"{topic} keeps {retention_s:.0f}s of records for {seconds:.0f}s (its retention limit)")
        try:
            await asyncio.sleep(seconds)
        finally:
            await _alter(s, topic, own)
        after = await _start_offsets(s, topic)
        removed = sum(after[p] - before.get(p, 0) for p in after)
        f.note = f"{removed} records deleted by retention"
        i._say(f"{topic}'s retention restored; the broker deleted {removed} of its oldest records")
        if removed <= 0:
            raise RuntimeError(f"the broker deleted nothing of {topic} keeping {retention_s:.0f}s")

    return Fault(f"topic at its retention limit (keeps {retention_s:.0f}s)", act)


def kafka_plan(i: Injector) -> list[Fault]:
    # the cheap faults first, while the load surely runs; each node kill waits until the node is a broker
    # again before the next fault (a second node down would leave the quorum, and min.insync.replicas, short)
    return [rebalance(i), retention_limit(i), kill_broker(i), kill_controller(i)]
