"""The faults, injected one after another while the load runs.

Each fault records when it started and ended; "recovery" is measured from its end to the first reply pushed
for a message sent after that end and accepted by ingress (a full trip through the pipeline, not a backlog item).
The next fault waits until the previous one has recovered (bounded), so each measurement stands alone.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from agentbus.stack.postgres import database_url, pg_ready, postgres_proc
from agentbus.stack.procs import Proc
from agentbus.stack.stack import Stack
from chaos.fakes import ChaosLLM, ChaosSink
from tests.support.kafka_cluster import KafkaCluster


@dataclass
class Fault:
    name: str
    action: Callable[[Fault], Awaitable[None]]  # sets ``ended`` when the fault is over; may then wait for more
    started: float | None = None
    ended: float | None = None
    error: str | None = None
    note: str | None = None  # what the fault did, for the table (which node, what was deleted)

    def end(self) -> None:
        self.ended = time.monotonic()


@dataclass
class Injector:
    """Where the faults act: the platform's service processes, the infrastructure, the fakes."""

    services: Stack  # the platform's stack: service processes
    infra: Stack  # the infrastructure's stack: broker, postgres
    llm: ChaosLLM
    sink: ChaosSink
    kafka: KafkaCluster | None = None  # Apache Kafka's nodes, when the run is on them
    log: list[str] = field(default_factory=list)

    def _say(self, text: str) -> None:
        self.log.append(text)
        print(f"[chaos] {text}", flush=True)

    def kill_service(self, name: str) -> Fault:
        async def act(f: Fault) -> None:
            await self.services.procs[name].kill()  # SIGKILL: no drain, no commit, no goodbye
            proc = self.services.service_proc(name)
            await proc.start()  # restarted at once, as a supervisor would: the fault ends here
            self.services.procs[name] = proc
            f.end()
            self._say(f"SIGKILLed {name}; restarted it")
            await proc.wait_ready(120)  # start-up time is part of the recovery

        return Fault(f"SIGKILL {name}", act)

    def pause_broker(self, seconds: float) -> Fault:
        async def act(f: Fault) -> None:
            broker = self._infra_proc("broker")
            broker.signal(signal.SIGSTOP)
            self._say(f"broker frozen (SIGSTOP) for {seconds:.0f}s")
            try:
                await asyncio.sleep(seconds)
            finally:
                broker.signal(signal.SIGCONT)
            self._say("broker thawed (SIGCONT)")

        return Fault(f"broker SIGSTOP {seconds:.0f}s", act)

    def restart_postgres(self, down_s: float) -> Fault:
        async def act(f: Fault) -> None:
            old = self._infra_proc("postgres")
            await old.stop(30)
            self._say(f"PostgreSQL stopped; starting it again in {down_s:.0f}s on the same data directory and port")
            await asyncio.sleep(down_s)
            home = self.infra.home.resolve()
            port = self.infra.ports.postgres
            new = postgres_proc(home / "pgdata", port, home / "logs", echo=False)
            url = database_url(port)
            new.ready = lambda: pg_ready(url)
            await new.start()
            self.infra.infra[self.infra.infra.index(old)] = new
            await new.wait_ready(60)
            f.end()
            self._say("PostgreSQL is back")

        return Fault(f"PostgreSQL restart (down {down_s:.0f}s)", act)

    def llm_window(self, mode: str, seconds: float) -> Fault:
        async def act(f: Fault) -> None:
            self.llm.mode = mode  # type: ignore[assignment]
            self._say(f"LLM {'answers 500' if mode == 'fail' else 'times out'} for {seconds:.0f}s")
            try:
                await asyncio.sleep(seconds)
            finally:
                self.llm.mode = "ok"
            self._say("LLM healthy again")

        return Fault(f"LLM {'HTTP 500' if mode == 'fail' else 'timeouts'} {seconds:.0f}s", act)

    def throttle_window(self, seconds: float) -> Fault:
        async def act(f: Fault) -> None:
            self.sink.throttling = True
            self._say(f"channel answers 429 (Retry-After {self.sink.retry_after_s}s) for {seconds:.0f}s")
            try:
                await asyncio.sleep(seconds)
            finally:
                self.sink.throttling = False
            self._say("channel accepting again")

        return Fault(f"channel 429 {seconds:.0f}s", act)

    def _infra_proc(self, name: str) -> Proc:
        for p in self.infra.infra:
            if p.name == name:
                return p
        raise LookupError(f"no infrastructure process {name!r} (is it external?)")


async def run_faults(
    faults: list[Fault], first_at: float, gap_s: float, recovered: Callable[[float], bool], recovery_wait_s: float,
    stop: asyncio.Event, load_done: Callable[[], bool],
) -> None:
    """Inject ``faults`` in order: the first ``first_at`` seconds in, each next one ``gap_s`` after the
    previous recovered (or after ``recovery_wait_s`` at most; at once when the load is over, as without
    new messages there is nothing to recover with)."""
    await asyncio.sleep(first_at)
    for i, f in enumerate(faults):
        if stop.is_set():
            return
        f.started = time.monotonic()
        try:
            await f.action(f)
        except Exception as exc:  # a fault that could not be injected is reported, not hidden
            f.error = f"{type(exc).__name__}: {exc}"
            print(f"[chaos] fault {f.name!r} failed: {f.error}", flush=True)
        if f.ended is None:
            f.end()
        if i + 1 < len(faults):
            deadline = time.monotonic() + recovery_wait_s
            assert f.ended is not None
            while (not recovered(f.ended) and time.monotonic() < deadline and not stop.is_set()
                   and not load_done()):
                await asyncio.sleep(0.5)
            await asyncio.sleep(gap_s)
