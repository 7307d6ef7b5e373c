"""The platform under test: real broker, real PostgreSQL, real embeddings server, five service processes.

Infrastructure starts once per test session; each test gets its own topic prefix and database schemas, so
tests never see each other's events or rows.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agentbus.settings import SERVICES
from agentbus.stack.procs import Proc
from agentbus.stack.stack import Ports, Stack
from tests.support.kafka_cluster import PLATFORM_ENV, KafkaCluster, kafka_libs


@dataclass
class Infra:
    stack: Stack
    env: dict[str, str]  # connection settings the services need
    kafka: KafkaCluster | None = None  # Apache Kafka's nodes, when the tests run on it (else the embedded broker)

    @property
    def bootstrap(self) -> str:
        return self.env["AGENTBUS_KAFKA_BOOTSTRAP_SERVERS"]

    @property
    def database_url(self) -> str:
        return self.env["AGENTBUS_DATABASE_URL"]

    @property
    def embeddings_url(self) -> str:
        return self.env["AGENTBUS_EMBEDDINGS_URL"]


@contextlib.asynccontextmanager
async def start_infra(embeddings: bool = True) -> AsyncIterator[Infra]:
    """PostgreSQL, the embeddings server (unless not ``embeddings``) and the broker: the embedded one, or a
    three-node Apache Kafka cluster when ``AGENTBUS_TEST_KAFKA_LIBS`` names Kafka's jars (``make test-kafka``).
    On Kafka the platform's settings for it (replication 3, min.insync.replicas 2, idempotent producers) are
    in the environment for the session: the services get them, and so does every ``Settings()`` a test makes."""
    home = Path(tempfile.mkdtemp(prefix="agentbus-test-"))
    env = {} if embeddings else {"AGENTBUS_EMBEDDINGS_URL": ""}
    for k in ("AGENTBUS_KAFKA_BOOTSTRAP_SERVERS", "AGENTBUS_DATABASE_URL", "AGENTBUS_EMBEDDINGS_URL",
              "AGENTBUS_QDRANT_URL"):
        os.environ.pop(k, None)
    libs = kafka_libs()
    kafka = KafkaCluster(libs, home / "kafka") if libs is not None else None
    saved = {k: os.environ.get(k) for k in PLATFORM_ENV}
    stack = Stack(home=home, config_file=home / "unused.yaml", ports=Ports.free(), env=env,
                  echo=bool(os.environ.get("AGENTBUS_TEST_ECHO")), archive_log=False)
    try:
        if kafka is not None:
            await kafka.start()
            env["AGENTBUS_KAFKA_BOOTSTRAP_SERVERS"] = kafka.bootstrap  # the stack starts no broker of its own
            os.environ.update(PLATFORM_ENV)
        conn = await stack.start_infra()
        if kafka is not None:
            conn.update(PLATFORM_ENV)
        yield Infra(stack, conn, kafka)
    finally:
        await stack.stop()
        if kafka is not None:
            await kafka.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@dataclass
class Platform:
    stack: Stack
    prefix: str
    schema_suffix: str
    env: dict[str, str]
    config: dict[str, Any]

    @property
    def ingress_url(self) -> str:
        return self.stack.ingress_url()

    def url_of(self, service: str) -> str:
        return f"http://127.0.0.1:{self.stack.ports.services[service]}"

    @property
    def procs(self) -> dict[str, Proc]:
        return self.stack.procs

    async def restart(self, service: str, kill: bool = True) -> None:
        proc = self.stack.procs[service]
        if kill:
            await proc.kill()
        else:
            await proc.stop()
        await self.stack.start_service(service)

    def schema(self, service: str) -> str:
        return service + self.schema_suffix


@contextlib.asynccontextmanager
async def run_platform(
    infra: Infra,
    config: dict[str, Any],
    env: dict[str, str] | None = None,
    services: tuple[str, ...] = SERVICES,
    partitions: int = 3,
) -> AsyncIterator[Platform]:
    """Start ``services`` as processes against ``infra`` with the YAML ``config``."""
    home = Path(tempfile.mkdtemp(prefix="agentbus-platform-"))
    cfg_path = home / "agentbus.yaml"
    cfg_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    prefix = unique_prefix()
    suffix = f"_{prefix}"
    all_env = {
        "AGENTBUS_TOPIC_PREFIX": prefix,
        "AGENTBUS_DB_SCHEMA_SUFFIX": suffix,
        "AGENTBUS_TOPIC_PARTITIONS": str(partitions),
        "AGENTBUS_SESSION_TIMEOUT_MS": "2000",
        "AGENTBUS_HEARTBEAT_INTERVAL_MS": "500",
        "AGENTBUS_LOG_LEVEL": "info",
        "AGENTBUS_SHUTDOWN_GRACE_S": "5",
        **(env or {}),
    }
    stack = Stack(home=home, config_file=cfg_path, ports=Ports.free(), env=all_env, services=services,
                  echo=bool(os.environ.get("AGENTBUS_TEST_ECHO")))
    stack.service_env = dict(infra.env)
    if "AGENTBUS_EMBEDDINGS_URL" in all_env:
        stack.service_env["AGENTBUS_EMBEDDINGS_URL"] = all_env["AGENTBUS_EMBEDDINGS_URL"]
    try:
        first, *rest = services
        await stack.start_service(first)
        for name in rest:
            await stack.start_service(name)
        yield Platform(stack, prefix, suffix, all_env, config)
    except BaseException:
        for name in stack.procs:
            log = home / "logs" / f"{name}.log"
            if log.exists():
                print(f"---- {name} log (tail) ----\n" + "\n".join(log.read_text().splitlines()[-30:]))
        raise
    finally:
        await asyncio_gather_stop(stack)


async def asyncio_gather_stop(stack: Stack) -> None:
    import asyncio

    await asyncio.gather(*(p.stop(20) for p in stack.procs.values()), return_exceptions=True)


def base_config(sink_url: str | None = None, llm_url: str | None = None, secrets: dict[str, str] | None = None,
                tenants: tuple[str, ...] = ("acme", "globex")) -> dict[str, Any]:
    """Tenants with one webhook channel each, named after the tenant, pushing to ``sink_url``/<channel>."""
    secrets = secrets or {t: secret_for(t) for t in tenants}
    models = []
    agent_model = "echo"
    if llm_url:
        models = [{"name": "fake", "base_url": llm_url, "model": "fake-model", "timeout_s": 10}]
        agent_model = "fake"
    return {
        "tenants": [{"id": t} for t in tenants],
        "agents": [{"id": "assistant", "system_prompt": "You are a test assistant.", "model": agent_model,
                    "memory": {"history_turns": 10, "recall_top_k": 3}}],
        "models": models,
        "channels": [
            {"id": t, "type": "webhook", "tenant": t, "agent": "assistant",
             "secret": {"env": f"TEST_SECRET_{t.upper()}", "default": secrets[t]},
             **({"push_url": f"{sink_url}/push/{t}"} if sink_url else {})}
            for t in tenants
        ],
        "jobs": [],
    }


def secret_for(name: str) -> str:
    import base64

    return "whsec_" + base64.b64encode(f"secret-for-{name}-0123456789".encode()).decode()


__all__ = ["Infra", "Platform", "base_config", "field", "run_platform", "start_infra", "secret_for"]
