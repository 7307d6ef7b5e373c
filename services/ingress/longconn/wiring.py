"""Building the supervisors of a configuration's ``mode: stream`` channels.

Each connection delivers into the same acceptor the webhooks use, inside a span of its own, so an event that
arrived over a long connection is traced, de-duplicated and published exactly like one that arrived by HTTP.
"""

from __future__ import annotations

import httpx
from opentelemetry.trace import SpanKind

from agentbus import metrics
from agentbus.channeltypes import ChannelBase
from agentbus.services.ingress.accept import Acceptor, Outcome
from agentbus.services.ingress.channels.base import InboundAdapter
from agentbus.services.ingress.inbound import Inbound
from agentbus.services.ingress.longconn import connection_class
from agentbus.services.ingress.longconn.base import Deliver, LinkState
from agentbus.services.ingress.longconn.supervisor import Supervisor
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


def supervisors(adapters: dict[str, InboundAdapter], acceptor: Acceptor, leases: Leases, holder: str,
                http: httpx.AsyncClient, ttl_s: float, reconnect_max_s: float) -> list[Supervisor]:
    out = []
    for adapter in adapters.values():
        channel = adapter.channel
        if channel.mode != "stream":
            continue
        state = LinkState()
        conn = connection_class(channel.type)(channel, adapter, delivering(acceptor, channel, state), http, state)
        out.append(Supervisor(conn, leases, holder, ttl_s, reconnect_max_s))
    return out
