"""Wiring of the reasoner: ledger, LLM client, model health probes, the agents' tools, topic → handler table."""

from __future__ import annotations

from pathlib import Path

import structlog

from agentbus.blobs import open_blob_store
from agentbus.bus import Producer
from agentbus.config import ConfigError, PlatformConfig
from agentbus.db import service_database
from agentbus.events import ContextAssembled, ReplyProgress, UserErasureRequested
from agentbus.httpclient import async_client
from agentbus.liveconfig import live_of
from agentbus.retention import Table, pruner
from agentbus.service import ServiceParts, keyring_of
from agentbus.services.reasoner.budget import PgUsage, TokenBudget
from agentbus.services.reasoner.erasure import ReasonerErasure
from agentbus.services.reasoner.handlers import Reasoner
from agentbus.services.reasoner.health import HealthBook, Prober, configured_endpoints, health_routes
from agentbus.services.reasoner.ledger import Ledger
from agentbus.services.reasoner.llm import ChatClient
from agentbus.services.reasoner.ports import Tool
from agentbus.services.reasoner.routes import PgInferences, inference_routes
from agentbus.services.reasoner.summarystore import PgSummaries
from agentbus.services.reasoner.tools.http_action import HttpActionTool
from agentbus.services.reasoner.tools.mcp import McpSource
from agentbus.services.reasoner.tools.memory import MemoryTool, memory_url
from agentbus.services.reasoner.tools.plugins import load_plugins
from agentbus.services.reasoner.tools.registry import ToolRegistry, builtin_tools
from agentbus.services.reasoner.tools.schedule import ScheduleTool, scheduler_url
from agentbus.settings import Settings

log = structlog.get_logger("agentbus.reasoner")

# the inference ledger past its tenant's retention; the token counts' once-only records past the horizon; a
# running summary not updated for as long as its tenant keeps turns
LEDGER_TABLES = [Table("inferences", "created_at", "ledger"), Table("steps", "created_at", "ledger"),
                 Table("token_usage_counted", "counted_at"),
                 Table("summaries", "updated_at", "turns")]  # a summary untouched as long as its turns


class ProducerProgress:
    """reply.progress straight to the bus, acknowledged before the answer goes on."""

    def __init__(self, producer: Producer) -> None:
        self._producer = producer

    async def publish(self, event: ReplyProgress) -> None:
        await self._producer.publish([event])


async def tool_sources_changed(old: PlatformConfig, new: PlatformConfig) -> None:
    if old.mcp_servers != new.mcp_servers or old.http_tools != new.http_tools:
        log.warning("config_needs_restart", keys=["mcp_servers", "http_tools"],
                    reason="tool sources are connected at start")


async def bootstrap(settings: Settings, config: PlatformConfig, producer: Producer) -> ServiceParts:
    pool, database = await service_database(settings, "reasoner", Path(__file__).parent / "migrations")
    health = HealthBook()
    llm = ChatClient(settings.llm_attempts, settings.llm_max_connections, health)
    probe_http = async_client(timeout=60.0, max_connections=16)
    prober = Prober(health, lambda: configured_endpoints(config, settings), settings.model_probe_interval_s,
                    probe_http)
    keys = keyring_of(producer)
    ledger = Ledger(pool, keys)
    tool_http = async_client(timeout=30.0, max_connections=64)
    memory, schedule = MemoryTool(memory_url(settings)), ScheduleTool(scheduler_url(settings))
    builtins: list[Tool] = [*builtin_tools(), memory, schedule,
                            *(HttpActionTool(t, tool_http) for t in config.http_tools)]
    plugins = load_plugins(reserved=[t.name for t in builtins])
    for problem in plugins.problems:  # a bad plugin is named and left out; the other tools still load
        log.error("tool_plugin_refused", problem=problem)
    # MCP servers: connected now (a server that is down is not fatal: its tools error until it is back)
    sources = [McpSource(server) for server in config.mcp_servers]
    for source in sources:
        await source.start()
        state = source.state()
        log.info("mcp_server", server=state.server, up=state.up, tools=state.tools, error=state.error)
    registry = ToolRegistry(builtins, sources, plugins.tools)
    problems = registry.validate(config)
    if problems:
        raise ConfigError("invalid configuration\n" + "\n".join(f"  {p}" for p in problems))
    if (live := live_of(config)) is not None:
        # a new version naming a tool no source provides is not applied; MCP servers and HTTP tools are
        # connected at start, so a change to them takes a restart of the reasoner (said in its log)
        live.check(registry.validate)
        live.on_change(tool_sources_changed)
    blobs, blob_pool = await open_blob_store(settings)
    reasoner = Reasoner(config, settings, ledger, llm, registry, progress=ProducerProgress(producer), blobs=blobs,
                        budget=TokenBudget(config, PgUsage(pool)), summaries=PgSummaries(pool))

    return ServiceParts(
        routes={ContextAssembled: reasoner.answer, UserErasureRequested: ReasonerErasure(pool, keys).erase},
        give_up={ContextAssembled: reasoner.apologise},
        http_routes=[*health_routes(prober), *inference_routes(PgInferences(pool))],
        checks={"database": database},
        background=[prober.run, pruner(pool, "reasoner", LEDGER_TABLES, config, settings).run],
        on_stop=[*(s.aclose for s in sources), llm.aclose, probe_http.aclose, tool_http.aclose, memory.aclose,
                 schedule.aclose, ledger.aclose, blob_pool.close, pool.close],
    )
