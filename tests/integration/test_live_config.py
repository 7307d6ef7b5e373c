"""The configuration's topic on the real broker and PostgreSQL: the first service seeds it, every replica
follows it, writers serialise on the advisory lock, and nothing invalid or stale is ever applied."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from agentbus.bus import Producer
from agentbus.bus.kafka import ensure_config_topic
from agentbus.config import PlatformConfig, parse_config
from agentbus.configwriter import ConfigConflict, ConfigRefused, ConfigWriter, pg_lock
from agentbus.liveconfig import changed_event, follow_config, read_log, start_live_config, wait_for_version
from agentbus.settings import Settings
from tests.support.platform import Infra, unique_prefix

pytestmark = [pytest.mark.integration, pytest.mark.broker]


def document(model: str = "echo") -> dict[str, Any]:
    return {
        "tenants": [{"id": "acme"}],
        "agents": [{"id": "assistant", "model": model}],
        "models": [{"name": "fast", "base_url": "http://127.0.0.1:9/v1", "model": "m"}],
        "channels": [{"id": "acme", "type": "webhook", "tenant": "acme", "agent": "assistant",
                      "secret": {"env": "LIVE_CONFIG_TEST_SECRET", "default": "s3cret-for-tests"}}],
    }


def switch_model(model: str) -> Any:
    def edit(doc: dict[str, Any]) -> dict[str, Any]:
        doc["agents"][0]["model"] = model
        return doc
    return edit


def add_tenant(tenant: str) -> Any:
    def edit(doc: dict[str, Any]) -> dict[str, Any]:
        doc["tenants"].append({"id": tenant})
        return doc
    return edit


async def test_seeded_once_followed_by_every_replica_and_written_under_the_lock(infra: Infra) -> None:
    prefix = unique_prefix()
    s = Settings(kafka_bootstrap_servers=infra.bootstrap, topic_prefix=prefix, dev_mode=True)
    assert await ensure_config_topic(s) == "created"
    assert await ensure_config_topic(s) == "exists"
    producer = Producer(s, "test")
    await producer.start()
    tasks: list[asyncio.Task[None]] = []
    try:
        seed = document()
        a, start_a = await start_live_config(s, "ingress", seed, parse_config(seed), producer)
        assert a.version == 1 and a.agent("assistant").model == "echo"  # read through to the applied version
        other = document("fast")  # a replica started with another file: the topic's version wins
        b, start_b = await start_live_config(s, "reasoner", other, parse_config(other), producer)
        assert b.version == 1 and b.agent("assistant").model == "echo"
        latest, _ = await read_log(s)
        assert latest is not None and latest.data.reason == "seed" and latest.data.actor == "ingress:file"

        seen: list[tuple[str, str]] = []

        async def hook(old: PlatformConfig, new: PlatformConfig) -> None:
            seen.append((old.agents[0].model, new.agents[0].model))

        b.on_change(hook)
        tasks = [asyncio.create_task(follow_config(s, a, start_a)), asyncio.create_task(follow_config(s, b, start_b))]
        writer = ConfigWriter(s, producer, pg_lock(infra.database_url, prefix), "test")

        out = await writer.write(switch_model("fast"), actor="cli", reason="apply")
        assert (out.version, out.base_version) == (2, 1)
        assert out.changes == ["~ agents.assistant.model: 'echo' → 'fast'"]
        assert await wait_for_version(a, 2) and await wait_for_version(b, 2)
        assert a.agent("assistant").model == "fast" and b.current.agent("assistant").model == "fast"
        assert seen == [("echo", "fast")]

        # invalid: refused naming the key, nothing published
        with pytest.raises(ConfigRefused, match=r"agents\[0\]\.model: unknown model 'nope'"):
            await writer.write(switch_model("nope"), actor="cli", reason="apply")
        # conditional on a version that is not the newest: refused
        with pytest.raises(ConfigConflict, match="at version 2, not 1"):
            await writer.write(switch_model("echo"), actor="cli", reason="apply", expected_version=1)
        # a dry run and a write that changes nothing publish nothing
        dry = await writer.write(switch_model("echo"), actor="cli", reason="apply", dry_run=True)
        assert dry.published is None and dry.changes == ["~ agents.assistant.model: 'fast' → 'echo'"]
        same = await writer.write(switch_model("fast"), actor="cli", reason="apply")
        assert same.published is None and same.version == 2
        latest, _ = await read_log(s)
        assert latest is not None and latest.data.version == 2

        # two writers at once: each builds on the other's version (no update lost)
        w2 = ConfigWriter(s, producer, pg_lock(infra.database_url, prefix), "test")
        done = await asyncio.gather(writer.write(add_tenant("globex"), actor="cli", reason="apply"),
                                    w2.write(add_tenant("initech"), actor="cli", reason="apply"))
        assert sorted(o.version for o in done) == [3, 4]
        assert await wait_for_version(a, 4) and await wait_for_version(b, 4)
        assert {t.id for t in a.tenants} == {t.id for t in b.tenants} == {"acme", "globex", "initech"}

        # a stale version (an old writer's, a redrive) is ignored by every replica
        stale = copy.deepcopy(document("echo"))
        await producer.publish([changed_event(stale, 3, actor="cli", reason="apply", changes=[], source="test")])
        marker = await writer.write(add_tenant("umbrella"), actor="cli", reason="apply")
        assert marker.version == 5
        assert await wait_for_version(a, 5) and await wait_for_version(b, 5)
        assert a.agent("assistant").model == "fast" and len(a.tenants) == 4
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await producer.stop()
