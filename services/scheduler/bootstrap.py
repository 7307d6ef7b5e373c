"""Wiring of the scheduler: jobs table, the configuration's jobs synced at start and on every new version, the
tick loop, job.requested commands."""

from __future__ import annotations

from pathlib import Path

from agentbus.bus import Producer
from agentbus.config import PlatformConfig
from agentbus.db import service_database
from agentbus.events import JobRequested
from agentbus.liveconfig import live_of
from agentbus.retention import Table, pruner
from agentbus.service import ServiceParts
from agentbus.services.scheduler.handlers import Scheduler
from agentbus.services.scheduler.routes import job_routes
from agentbus.services.scheduler.store import PgJobStore
from agentbus.settings import Settings

# published firings past the pruning horizon (an unpublished one is the outbox, kept until it is published)
FIRINGS = Table("firings", "created_at", where="published")


async def bootstrap(settings: Settings, config: PlatformConfig, producer: Producer) -> ServiceParts:
    pool, database = await service_database(settings, "scheduler", Path(__file__).parent / "migrations")
    store = PgJobStore(pool)
    scheduler = Scheduler(config, store, producer, settings.scheduler_tick_s)
    await scheduler.sync_yaml_jobs()

    async def jobs_changed(old: PlatformConfig, new: PlatformConfig) -> None:
        if old.jobs != new.jobs or old.channels != new.channels or old.agents != new.agents:
            await scheduler.sync_yaml_jobs()

    if (live := live_of(config)) is not None:
        live.on_change(jobs_changed)

    return ServiceParts(
        routes={JobRequested: scheduler.apply_command},
        http_routes=job_routes(store),
        checks={"database": database},
        background=[scheduler.run, pruner(pool, "scheduler", [FIRINGS], config, settings).run],
        on_stop=[pool.close],
    )
