"""Keeping one channel's long connection alive on exactly one replica.

Every replica runs a supervisor per ``mode: stream`` channel. It asks for the channel's lease every third
of the lease's life; the replica that gets it opens the connection, renews the lease on the same beat and
reconnects with exponential backoff (with jitter) whenever the session ends. The others wait, so when the
holder dies its lease expires and one of them takes the connection over within a lease's life. A holder that
cannot renew (the database is unreachable) closes its connection before its lease can have expired, so two
replicas hold a connection at once only for the moments a platform takes to notice a closed socket, and an
event delivered to both is still published once (its id is derived from the platform's event id).
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from agentbus import metrics
from agentbus.services.ingress.longconn.base import LinkState, LongConnection
from agentbus.services.ingress.ports import Leases, LeaseUnavailable

log = structlog.get_logger("agentbus.ingress")

Sleep = Callable[[float], Awaitable[None]]


def replica_name() -> str:
    """This process's name in the lease table: host, pid and a random part (pids repeat across restarts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def backoff(attempt: int, cap_s: float, rng: Callable[[], float] = random.random) -> float:
    """0.5 s doubling per failed attempt up to ``cap_s``, each drawn from its upper half (jitter)."""
    base = min(cap_s, 0.5 * 2 ** min(attempt, 16))
    return base * (0.5 + rng() / 2)


class Supervisor:
    def __init__(self, connection: LongConnection, leases: Leases, holder: str, ttl_s: float,
                 reconnect_max_s: float = 30.0, sleep: Sleep = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.connection = connection
        self.channel = connection.channel.id
        self.state: LinkState = connection.state
        self._leases = leases
        self._holder = holder
        self._ttl = ttl_s
        self._beat = ttl_s / 3
        self._reconnect_max = reconnect_max_s
        self._sleep = sleep
        self._clock = clock
        metrics.child(metrics.CONNECTION_UP, self.channel).set_function(lambda: float(self.state.connected))
        metrics.child(metrics.CONNECTION_HELD, self.channel).set_function(lambda: float(self.state.held))

    async def run(self) -> None:
        """Forever: wait for the lease, hold the connection while the lease is ours. Cancel to stop."""
        holding = False
        try:
            while True:
                if await self._take():
                    holding = True
                    log.info("connection_lease_taken", channel=self.channel)
                    await self._hold()
                    holding = False
                await self._sleep(self._beat)
        finally:
            if holding:
                try:
                    await asyncio.shield(self._leases.release(self.channel, self._holder))
                    log.info("connection_lease_released", channel=self.channel)
                except Exception as exc:  # it expires on its own
                    log.warning("connection_lease_release_failed", channel=self.channel, error=str(exc)[:200])

    async def _take(self) -> bool:
        try:
            holder = await self._leases.acquire(self.channel, self._holder, self._ttl)
        except LeaseUnavailable as exc:
            self.state.holder = ""
            self.state.last_error = f"lease store unavailable: {exc}"[:300]
            log.warning("connection_lease_unavailable", channel=self.channel, error=str(exc)[:200])
            return False
        self.state.holder = holder
        return holder == self._holder

    async def _hold(self) -> None:
        self.state.held = True
        sessions = asyncio.create_task(self._sessions(), name=f"connection {self.channel}")
        try:
            await self._renew()
        finally:
            sessions.cancel()
            await asyncio.gather(sessions, return_exceptions=True)
            self.state.held = False
            self.state.down("lease lost")

    async def _renew(self) -> None:
        """Returns when the lease is, or may be, no longer ours."""
        renewed = self._clock()
        while True:
            await self._sleep(self._beat)
            try:
                holder = await self._leases.acquire(self.channel, self._holder, self._ttl)
            except LeaseUnavailable as exc:
                log.warning("connection_lease_renewal_failed", channel=self.channel, error=str(exc)[:200])
                if self._clock() - renewed + self._beat >= self._ttl:
                    log.error("connection_lease_given_up", channel=self.channel)
                    return
                continue
            if holder != self._holder:
                self.state.holder = holder
                log.warning("connection_lease_lost", channel=self.channel, holder=holder)
                return
            renewed = self._clock()

    async def _sessions(self) -> None:
        attempt = 0
        while True:
            error: str | None = None
            try:
                await self.connection.run()
                error = "session ended"
            except asyncio.CancelledError:
                self.state.down(None)
                raise
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            was_up_long = self.state.connected and time.time() - self.state.since > 30
            self.state.down(error)
            self.state.reconnects += 1
            metrics.child(metrics.RECONNECTS, self.channel).inc()
            attempt = 0 if was_up_long else attempt  # a session that lasted starts the backoff over
            delay = backoff(attempt, self._reconnect_max)
            attempt += 1
            log.warning("connection_lost", channel=self.channel, error=error[:300], retry_in_s=round(delay, 2))
            await self._sleep(delay)


def describe(state: LinkState, channel_type: str) -> dict[str, Any]:
    """One channel's entry in /readyz."""
    if state.held:
        status = "connected" if state.connected else "down"
    else:
        status = "held elsewhere" if state.holder else "waiting for the lease"
    out: dict[str, Any] = {"type": channel_type, "status": status, "held_here": state.held,
                           "holder": state.holder or None, "reconnects": state.reconnects, "events": state.events}
    if state.since:
        out["since"] = round(state.since, 3)
    if state.last_error and not state.connected:
        out["last_error"] = state.last_error
    return out
