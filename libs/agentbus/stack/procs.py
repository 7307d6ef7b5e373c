"""Child processes with named, prefixed log lines, readiness probes, and orderly stop."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

COLORS = ["36", "32", "35", "33", "34", "31", "96", "92", "95", "93"]


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out as the source port of outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


_SLICES = 8
_cursor: list[int] = []  # this process's next offset in its slice (set on first use)


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now, never handed out before by this process, below the ephemeral range: a port the kernel
    picked with bind(0) is one it also gives outgoing connections (to the broker, the database) as their source
    port, so the service that binds it a moment later can find it taken (uvicorn then exits with 3). Each process
    walks its own slice of the range (by pid) in order, so parallel test workers rarely meet, and a port comes
    back only after the whole slice (about 1,600) was handed out, so services started together never share one."""
    low = max(20000 + _SLICES, min(_ephemeral_low(), 61000))
    width = (low - 20000) // _SLICES
    base = 20000 + (os.getpid() % _SLICES) * width
    if not _cursor:
        _cursor.append(random.randrange(width))
    for _ in range(width):
        port = base + _cursor[0] % width
        _cursor[0] += 1
        if _bindable(host, port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


async def http_ok(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1.0) as c:
            return (await c.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Proc:
    name: str
    argv: Sequence[str]
    env: dict[str, str] = field(default_factory=dict)
    ready: Callable[[], Awaitable[bool]] | None = None
    run_as: dict[str, object] = field(default_factory=dict)  # user/group/extra_groups for the child
    stop_signal: int = signal.SIGTERM
    log_dir: Path | None = None
    echo: bool = True
    color: str = "37"
    # False: the child's environment is ``env`` alone, not this process's with ``env`` over it (a test that
    # starts a service with exactly the environment a deployment gives it)
    inherit_env: bool = True
    process: asyncio.subprocess.Process | None = None
    _pump: asyncio.Task[None] | None = None
    started_at: float = 0.0

    async def start(self) -> None:
        env = {**os.environ, **self.env} if self.inherit_env else dict(self.env)
        # Not echoed: the child writes straight to its log file, so a busy parent can never fill a pipe
        # and stall the child's logging (and with it the child's event loop).
        direct = None
        if not self.echo:
            if self.log_dir is not None:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                direct = open(self.log_dir / f"{self.name}.log", "ab")  # noqa: SIM115 - the child owns it
            else:
                direct = open(os.devnull, "wb")  # noqa: SIM115
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                env=env,
                stdout=direct if direct is not None else asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                **self.run_as,  # type: ignore[arg-type]  # user/group/extra_groups, typed apart in the stub
                start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops children in order
            )
        finally:
            if direct is not None:
                direct.close()
        self.started_at = time.monotonic()
        if direct is None:
            self._pump = asyncio.create_task(self._pump_logs())

    async def _pump_logs(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        logfile = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            logfile = open(self.log_dir / f"{self.name}.log", "ab")  # noqa: SIM115 - closed below
        prefix = f"\x1b[{self.color}m{self.name:>9} |\x1b[0m " if sys.stdout.isatty() else f"{self.name:>9} | "
        try:
            while True:
                line = await self.process.stdout.readline()
                if not line:
                    break
                if logfile is not None:
                    logfile.write(line)
                    logfile.flush()
                if self.echo:
                    sys.stdout.write(prefix + line.decode("utf-8", "replace").rstrip("\n") + "\n")
                    sys.stdout.flush()
        finally:
            if logfile is not None:
                logfile.close()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited with code {self.process.returncode if self.process else '?'}")
            if self.ready is None or await self.ready():
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f}s")

    def signal(self, sig: int) -> None:
        if self.alive and self.process is not None:
            try:
                os.kill(self.process.pid, sig)
            except ProcessLookupError:
                pass

    async def stop(self, timeout: float = 30.0) -> int | None:
        if self.process is None:
            return None
        if self.alive:
            self.signal(signal.SIGCONT)
            self.signal(self.stop_signal)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                self.signal(signal.SIGKILL)
                await self.process.wait()
        if self._pump is not None:
            try:
                await asyncio.wait_for(self._pump, 5)
            except TimeoutError:
                self._pump.cancel()
        return self.process.returncode

    async def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.process is not None:
            await self.process.wait()
