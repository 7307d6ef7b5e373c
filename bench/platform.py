"""Starting what a run measures: the embedded infrastructure once, then per scenario the peers (fake LLM,
fake embeddings, push sink) and the five services as processes, each scenario with its own topic prefix,
database schemas and Qdrant folder so scenarios never see each other's data.

Service output goes straight to log files (no pipe through this process), so the harness's own work
does not compete with the platform for the CPU more than it must.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import httpx
import yaml

from agentbus.settings import SERVICES
from agentbus.stack.procs import Proc, free_port, http_ok
from agentbus.stack.stack import Ports, Stack
from bench.procstats import Sampler

EXTERNAL = ("AGENTBUS_KAFKA_BOOTSTRAP_SERVERS", "AGENTBUS_DATABASE_URL", "AGENTBUS_EMBEDDINGS_URL",
            "AGENTBUS_QDRANT_URL", "AGENTBUS_LLM_BASE_URL", "AGENTBUS_TOPIC_PREFIX", "AGENTBUS_DB_SCHEMA_SUFFIX",
            "AGENTBUS_OTLP_ENDPOINT")


ROOT = Path(__file__).resolve().parent.parent


def child_env() -> dict[str, str]:
    """The environment of the harness's own children: ``bench`` importable from anywhere."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else "")}


class FileProc(Proc):
    """A ``Proc`` whose output is written by the child straight to ``<log_dir>/<name>.log``."""

    async def start(self) -> None:
        assert self.log_dir is not None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{self.name}.log", "ab") as log:  # noqa: ASYNC230 - handed to the child
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, env={**os.environ, **self.env}, stdout=log, stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL, start_new_session=True, **self.run_as,  # type: ignore[arg-type]
            )
        self.started_at = asyncio.get_running_loop().time()


def as_file_proc(p: Proc) -> FileProc:
    return FileProc(**{f.name: getattr(p, f.name) for f in fields(p) if f.init})


@dataclass
class Peer:
    name: str
    proc: FileProc
    port: int
    out: Path | None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def get(self, path: str) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10) as c:
            return (await c.get(self.url + path)).json()  # type: ignore[no-any-return]

    async def flush(self) -> None:
        if self.out is not None:
            async with httpx.AsyncClient(timeout=10) as c:
                await c.post(self.url + "/flush")


@dataclass
class Platform:
    stack: Stack
    prefix: str
    home: Path
    config: dict[str, Any]

    @property
    def webhooks_url(self) -> str:
        return self.stack.ingress_url() + "/v1/webhooks"


@dataclass
class Bench:
    """One run's processes. ``home`` is a scratch folder for data and logs."""

    home: Path
    sampler: Sampler = field(default_factory=Sampler)
    infra: Stack | None = None
    infra_env: dict[str, str] = field(default_factory=dict)
    peers: dict[str, Peer] = field(default_factory=dict)
    service_env: dict[str, str] = field(default_factory=dict)  # extra settings for every service
    # another broker for the services than the embedded one (its bootstrap servers and settings), while set
    broker_env: dict[str, str] = field(default_factory=dict)

    async def start_infra(self) -> None:
        for sub in ("logs", "records"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        for k in EXTERNAL:
            os.environ.pop(k, None)
        stack = Stack(home=self.home / "infra", config_file=self.home / "unused.yaml", ports=Ports.free(),
                      echo=False)
        self.infra = stack
        self.infra_env = await stack.start_infra()
        for p in stack.infra:
            assert p.process is not None
            self.sampler.add(p.name, p.process.pid, tree=p.name == "postgres", group="infra")

    async def stop_infra(self) -> None:
        if self.infra is not None:
            await self.infra.stop()

    async def start_peer(self, name: str, role: str, *args: str, record: bool = True) -> Peer:
        port = free_port()
        out = self.home / "records" / f"{name}-{uuid.uuid4().hex[:6]}.txt" if record else None
        argv = [sys.executable, "-m", "bench.peers", role, "--port", str(port), *args]
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            argv += ["--out", str(out)]
        health = "/health"
        proc = FileProc(name, argv, env=child_env(), ready=lambda: http_ok(f"http://127.0.0.1:{port}{health}"),
                        log_dir=self.home / "logs", echo=False)
        await proc.start()
        await proc.wait_ready(30)
        assert proc.process is not None
        self.sampler.add(name, proc.process.pid, group="peer")
        peer = Peer(name, proc, port, out)
        self.peers[name] = peer
        return peer

    async def stop_peer(self, name: str) -> None:
        peer = self.peers.pop(name, None)
        if peer is not None:
            self.sampler.remove(name)
            await peer.proc.stop(10)

    async def stop_peers(self) -> None:
        for name in list(self.peers):
            await self.stop_peer(name)

    async def start_platform(self, config: dict[str, Any], env: dict[str, str] | None = None) -> Platform:
        """Start the five services; a start that fails (e.g. a port picked as free was taken before the
        service bound it, which other programs on the machine can cause) is retried with fresh ports."""
        for attempt in range(3):
            try:
                return await self._start_platform(config, env)
            except (RuntimeError, TimeoutError) as err:
                if attempt == 2:
                    raise
                print(f"bench: platform start failed ({err}); retrying with fresh ports", file=sys.stderr, flush=True)
        raise AssertionError("unreachable")

    async def _start_platform(self, config: dict[str, Any], env: dict[str, str] | None) -> Platform:
        prefix = f"b{uuid.uuid4().hex[:8]}"
        home = self.home / prefix
        home.mkdir(parents=True)
        cfg = home / "agentbus.yaml"
        cfg.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        all_env = {"AGENTBUS_TOPIC_PREFIX": prefix, "AGENTBUS_DB_SCHEMA_SUFFIX": f"_{prefix}",
                   **(env or {}), **self.service_env}
        stack = Stack(home=home, config_file=cfg, ports=Ports.free(), env=all_env, echo=False)
        stack.service_env = {**self.infra_env, **self.broker_env}
        if "AGENTBUS_EMBEDDINGS_URL" in all_env:
            stack.service_env["AGENTBUS_EMBEDDINGS_URL"] = all_env["AGENTBUS_EMBEDDINGS_URL"]
        platform = Platform(stack, prefix, home, config)
        try:
            first, *rest = SERVICES  # ingress creates the topics
            await self._start_service(stack, first)
            await asyncio.gather(*(self._start_service(stack, n) for n in rest))
        except BaseException:
            await self.stop_platform(platform)
            raise
        return platform

    async def _start_service(self, stack: Stack, name: str) -> None:
        proc = as_file_proc(stack.service_proc(name))
        port = stack.ports.services[name]
        proc.ready = lambda: _is_service(proc, port, name)
        stack.procs[name] = proc
        await proc.start()
        await proc.wait_ready(120)
        assert proc.process is not None
        self.sampler.add(name, proc.process.pid, group="service")

    async def stop_platform(self, platform: Platform) -> dict[str, int | None]:
        for name in platform.stack.procs:
            self.sampler.remove(name)
        codes = await asyncio.gather(*(p.stop(30) for p in platform.stack.procs.values()), return_exceptions=True)
        return {n: (c if isinstance(c, int) or c is None else -1)
                for n, c in zip(platform.stack.procs, codes, strict=True)}

    def exited(self, platform: Platform) -> dict[str, int | None]:
        """Services that are no longer running, with their exit codes."""
        return {n: p.process.returncode if p.process else None for n, p in platform.stack.procs.items()
                if not p.alive}

    def log_tail(self, platform: Platform, service: str, lines: int = 20) -> str:
        log = platform.home / "logs" / f"{service}.log"
        if not log.exists():
            return ""
        with open(log, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 20000))
            return b"\n".join(f.read().splitlines()[-lines:]).decode("utf-8", "replace")


async def _is_service(proc: Proc, port: int, name: str) -> bool:
    """Ready when this very service answers /readyz on its port (not another program holding the port)."""
    if not proc.alive:
        return False
    try:
        async with httpx.AsyncClient(timeout=1.0) as c:
            r = await c.get(f"http://127.0.0.1:{port}/readyz")
        return r.status_code == 200 and r.json().get("service") == name and proc.alive
    except (httpx.HTTPError, ValueError):
        return False
