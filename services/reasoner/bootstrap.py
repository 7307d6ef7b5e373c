"""Wiring of the reasoner: ledger, LLM client, topic → handler table."""

from __future__ import annotations

from pathlib import Path

from agentbus.bus import Producer
from agentbus.config import PlatformConfig
from agentbus.db import service_database
from agentbus.events import ContextAssembled
from agentbus.service import ServiceParts
from agentbus.services.reasoner.handlers import Reasoner
from agentbus.services.reasoner.ledger import Ledger
from agentbus.services.reasoner.llm import ChatClient
from agentbus.settings import Settings


async def bootstrap(settings: Settings, config: PlatformConfig, producer: Producer) -> ServiceParts:
    pool, database = await service_database(settings, "reasoner", Path(__file__).parent / "migrations")
    llm = ChatClient(settings.llm_attempts, settings.llm_max_connections)
    ledger = Ledger(pool)
    reasoner = Reasoner(config, settings, ledger, llm)

    return ServiceParts(
        routes={ContextAssembled: reasoner.answer},
        give_up={ContextAssembled: reasoner.apologise},
        checks={"database": database},
        on_stop=[llm.aclose, ledger.aclose, pool.close],
    )
