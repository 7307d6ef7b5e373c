"""Wiring of egress: delivery ledger, one adapter per configured channel, shared HTTP client, and the rate
limiter in PostgreSQL that all replicas share (``TokenBuckets`` is the in-process one unit tests use)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx

from agentbus.bus import Producer
from agentbus.channeltypes import ChannelBase
from agentbus.config import PlatformConfig
from agentbus.db import service_database
from agentbus.events import ReplyGenerated, ReplyProgress
from agentbus.httpclient import async_client
from agentbus.liveconfig import channel_changes, live_of
from agentbus.retention import Table, pruner
from agentbus.service import ServiceParts
from agentbus.services.egress.channels import ADAPTERS
from agentbus.services.egress.channels.base import OutboundAdapter, TokenCache
from agentbus.services.egress.handlers import Egress
from agentbus.services.egress.ledger import PgDeliveryLedger
from agentbus.services.egress.progress import ProgressDisplay
from agentbus.services.egress.progress_store import PgProgressStore
from agentbus.services.egress.routes import PgDeliveries, delivery_routes
from agentbus.services.egress.shared_limits import PgRateLimiter
from agentbus.settings import Settings

# deliveries past their tenant's retention, once finished (a reply still being pushed, or released to be
# pushed again, keeps its claim)
DELIVERIES = Table("deliveries", "claimed_at", "deliveries", where="status NOT IN ('pushing', 'pending')")


def build_adapters(config: PlatformConfig, http: httpx.AsyncClient, tokens: TokenCache) -> dict[str, OutboundAdapter]:
    out: dict[str, OutboundAdapter] = {}
    refresh_adapters(out, config.channels, [], http, tokens)
    return out


def refresh_adapters(adapters: dict[str, OutboundAdapter], changed: Sequence[ChannelBase], removed: Sequence[str],
                     http: httpx.AsyncClient, tokens: TokenCache) -> None:
    """Build the adapters of channels added or changed, drop those of removed ones (in place: the handlers
    look a reply's channel up in this dict per reply)."""
    for ch in changed:
        cls = ADAPTERS.get(ch.type)
        if cls is None:
            raise RuntimeError(f"no outbound adapter for channel type {ch.type!r} (channel {ch.id})")
        adapters[ch.id] = cls(ch, http, tokens)
    for cid in removed:
        adapters.pop(cid, None)


async def bootstrap(settings: Settings, config: PlatformConfig, producer: Producer) -> ServiceParts:
    pool, database = await service_database(settings, "egress", Path(__file__).parent / "migrations")
    http = async_client(timeout=settings.push_timeout_s, max_connections=512)
    ledger = PgDeliveryLedger(pool)
    tokens = TokenCache()
    adapters = build_adapters(config, http, tokens)

    async def channels_changed(old: PlatformConfig, new: PlatformConfig) -> None:
        changed, removed = channel_changes(old, new)
        refresh_adapters(adapters, changed, removed, http, tokens)

    if (live := live_of(config)) is not None:
        live.on_change(channels_changed)
    progress = ProgressDisplay(adapters, PgProgressStore(pool))
    egress = Egress(adapters, ledger, PgRateLimiter(pool), settings.push_attempts, progress=progress)

    return ServiceParts(
        routes={ReplyGenerated: egress.push_reply, ReplyProgress: progress.show},
        http_routes=delivery_routes(PgDeliveries(pool)),
        checks={"database": database},
        on_stop=[http.aclose, ledger.aclose, pool.close],
        background=[pruner(pool, "egress", [DELIVERIES], config, settings).run],
    )
