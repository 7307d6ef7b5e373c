"""Building the supervisors of a configuration's ``mode: stream`` channels, and starting and stopping them as
the configuration changes (``LongConnections``).

Each connection delivers into the same acceptor the webhooks use, inside a span of its own, so an event that
arrived over a long connection is traced, de-duplicated and published exactly like one that arrived by HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
import structlog
from opentelemetry.trace import SpanKind

from agentbus import metrics
from agentbus.channeltypes import ChannelBase
from agentbus.services.ingress.accept import Acceptor, Outcome
from agentbus.services.ingress.channels.base import InboundAdapter
from agentbus.services.ingress.inbound import Inbound
from agentbus.services.ingress.longconn import connection_class
from agentbus.services.ingress.longconn.base import Deliver, LinkState
from agentbus.services.ingress.longconn.supervisor import Supervisor, describe
from agentbus.services.ingress.ports import Leases
from agentbus.telemetry import tracer


def delivering(acceptor: Acceptor, channel: ChannelBase, state: LinkState) -> Deliver:
    async def deliver(inbound: Inbound) -> Outcome:
        with tracer().start_as_current_span("stream receive", kind=SpanKind.CONSUMER) as span:
            span.set_attribute("agentbus.channel", channel.id)
            try:
                outcome = await acceptor.accept(channel, inbound)
            except Exception:
                metrics.child(metrics.STREAM_EVENTS, channel.id, "failed").inc()
                raise
            span.set_attribute("agentbus.outcome", outcome.status)
            metrics.child(metrics.STREAM_EVENTS, channel.id, outcome.status).inc()
            state.events += 1
            return outcome

    return deliver


log = structlog.get_logger("agentbus.ingress.longconn")


def supervisor(adapter: InboundAdapter, acceptor: Acceptor, leases: Leases, holder: str, http: httpx.AsyncClient,
               ttl_s: float, reconnect_max_s: float) -> Supervisor:
    channel = adapter.channel
    state = LinkState()
    conn = connection_class(channel.type)(channel, adapter, delivering(acceptor, channel, state), http, state)
    return Supervisor(conn, leases, holder, ttl_s, reconnect_max_s)


class LongConnections:
    """The running supervisors, one per ``mode: stream`` channel: started with ingress, and for a channel
    added or changed by a new configuration version stopped (its lease released) and started anew.

    ``run`` is ingress's background task; a supervisor that fails (it should not: it retries everything)
    fails it, so the service stops loudly as it did when each supervisor was a task of its own."""

    def __init__(self, adapters: dict[str, InboundAdapter], acceptor: Acceptor, leases: Leases, holder: str,
                 http: httpx.AsyncClient, ttl_s: float, reconnect_max_s: float) -> None:
        self._adapters = adapters
        self._build: Any = lambda a: supervisor(a, acceptor, leases, holder, http, ttl_s, reconnect_max_s)
        self._running: dict[str, tuple[Supervisor, asyncio.Task[None]]] = {}
        self._failed: asyncio.Future[BaseException] | None = None

    def _start(self, adapter: InboundAdapter) -> None:
        sup: Supervisor = self._build(adapter)
        task = asyncio.create_task(sup.run(), name=f"supervisor {sup.channel}")
        task.add_done_callback(self._done)
        self._running[sup.channel] = (sup, task)

    def _done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._failed is None or self._failed.done():
            return
        exc = task.exception()
        if exc is not None:
            self._failed.set_result(exc)

    async def _stop(self, channel: str) -> None:
        found = self._running.pop(channel, None)
        if found is not None:
            found[1].cancel()
            await asyncio.gather(found[1], return_exceptions=True)
            log.info("connection_stopped", channel=channel, reason="configuration changed")

    async def run(self) -> None:
        self._failed = asyncio.get_running_loop().create_future()
        for adapter in list(self._adapters.values()):
            if adapter.channel.mode == "stream":
                self._start(adapter)
        try:
            raise await self._failed
        finally:
            for channel in list(self._running):
                await self._stop(channel)

    async def refresh(self, changed: Sequence[ChannelBase], removed: Sequence[str]) -> None:
        """After the adapters were rebuilt for a new version: restart what changed, stop what went."""
        for channel in [*(c.id for c in changed), *removed]:
            await self._stop(channel)
        if self._failed is None:  # not running yet: ``run`` starts every stream channel
            return
        for ch in changed:
            adapter = self._adapters.get(ch.id)
            if adapter is not None and ch.mode == "stream":
                self._start(adapter)
                log.info("connection_started", channel=ch.id, reason="configuration changed")

    def describe(self) -> dict[str, Any]:
        return {cid: describe(sup.state, sup.connection.channel.type) for cid, (sup, _) in self._running.items()}
