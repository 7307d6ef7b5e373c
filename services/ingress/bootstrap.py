"""Wiring of ingress: database, adapters per configured channel, routes."""

from __future__ import annotations

from pathlib import Path

from agentbus.bus import Producer
from agentbus.config import PlatformConfig
from agentbus.db import migrate, open_pool, schema_name
from agentbus.service import ServiceParts
from agentbus.services.ingress.accept import Acceptor
from agentbus.services.ingress.channels import ADAPTERS
from agentbus.services.ingress.channels.base import InboundAdapter
from agentbus.services.ingress.routes import webhook_routes
from agentbus.settings import Settings


def build_adapters(config: PlatformConfig) -> dict[str, InboundAdapter]:
    adapters: dict[str, InboundAdapter] = {}
    for ch in config.channels:
        cls = ADAPTERS.get(ch.type)
        if cls is None:
            raise RuntimeError(f"no inbound adapter for channel type {ch.type!r} (channel {ch.id})")
        adapters[ch.id] = cls(ch)
    return adapters


async def bootstrap(settings: Settings, config: PlatformConfig, producer: Producer) -> ServiceParts:
    schema = schema_name("ingress", settings)
    pool = await open_pool(settings, schema)
    await migrate(pool, schema, Path(__file__).parent / "migrations")
    acceptor = Acceptor(pool, producer)

    async def database() -> tuple[bool, str]:
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")
        return True, "connected"

    return ServiceParts(
        http_routes=webhook_routes(build_adapters(config), acceptor, settings.max_body_bytes),
        checks={"database": database},
        on_stop=[pool.close],
    )
