"""``agentbus init``: create the topics and run every service's migrations, once, before the services start.

In production the services do not create topics themselves (``AGENTBUS_CREATE_TOPICS=false``): partitions,
replication and retention are an operator's decision, made here (a Helm pre-install/pre-upgrade hook, the
compose ``init`` service). Both steps are idempotent, so running it again on every upgrade is safe:
existing topics are left as they are and applied migrations are skipped.
"""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path

import typer

from agentbus.settings import SERVICES, Settings


def migrations_dir(service: str) -> Path:
    module = importlib.import_module(f"agentbus.services.{service}")
    return Path(module.__file__ or "").parent / "migrations"


def topic_configs(retention_ms: int | None, min_insync_replicas: int | None) -> dict[str, str]:
    configs: dict[str, str] = {}
    if retention_ms is not None:
        configs["retention.ms"] = str(retention_ms)
    if min_insync_replicas is not None:
        configs["min.insync.replicas"] = str(min_insync_replicas)
    return configs


async def run_migrations(settings: Settings, services: tuple[str, ...] = SERVICES) -> dict[str, list[str]]:
    """Apply each service's migrations in its own schema, and those of the shared blob store (media sent to the
    bot, written by ingress and read by the reasoner) and of the people's data keys (every service seals and
    opens their text with them); returns the versions applied per schema."""
    from agentbus import blobs
    from agentbus.db import migrate, open_pool, schema_name
    from agentbus.sealing import keystore

    applied: dict[str, list[str]] = {}
    parts = [(service, migrations_dir(service)) for service in services]
    if services == SERVICES:
        parts += [(blobs.SCHEMA, blobs.MIGRATIONS), (keystore.SCHEMA, keystore.MIGRATIONS)]
    for name, directory in parts:
        schema = schema_name(name, settings)
        pool = await open_pool(settings, schema, max_size=1)
        try:
            applied[schema] = await migrate(pool, schema, directory)
        finally:
            await pool.close()
    return applied


async def init(
    settings: Settings,
    partitions: int,
    replication_factor: int,
    configs: dict[str, str],
    topics: bool = True,
    migrations: bool = True,
    wait_s: float = 0.0,
) -> None:
    from agentbus.bus.kafka import CONFIG_TOPIC_CONFIGS, create_topics, ensure_config_topic
    from agentbus.topics import all_topics, config_topic

    if topics:
        names = all_topics(settings.topic_prefix)
        shown = ", ".join(f"{k}={v}" for k, v in configs.items()) or "broker defaults"
        typer.echo(f"topics: {len(names)} with {partitions} partitions, replication factor {replication_factor}, "
                   f"{shown}")
        for name, state in (await create_topics(settings, names, partitions, replication_factor, configs,
                                                wait_s)).items():
            typer.echo(f"  {name}: {state}")
        # the same min.insync.replicas as the event topics: the configuration is acknowledged as they are
        min_isr = configs.get("min.insync.replicas")
        state = await ensure_config_topic(settings, replication_factor, wait_s,
                                          int(min_isr) if min_isr is not None else None)
        shown = ", ".join(f"{k}={v}" for k, v in CONFIG_TOPIC_CONFIGS.items())
        if min_isr is not None:
            shown += f", min.insync.replicas={min_isr}"
        typer.echo(f"  {config_topic(settings.topic_prefix)}: {state} (1 partition, {shown})")
    if migrations:
        typer.echo("migrations:")
        for schema, versions in (await run_migrations(settings)).items():
            typer.echo(f"  {schema}: " + (", ".join(versions) if versions else "up to date"))


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init_cmd(
        partitions: int = typer.Option(
            None, min=1, envvar="AGENTBUS_TOPIC_PARTITIONS",
            help="partitions per topic (default: AGENTBUS_TOPIC_PARTITIONS or 6); the most consumers per group",
        ),
        replication_factor: int = typer.Option(
            None, min=1, envvar="AGENTBUS_TOPIC_REPLICATION_FACTOR",
            help="replicas per partition (default: AGENTBUS_TOPIC_REPLICATION_FACTOR or 1; use 3 in production)",
        ),
        retention_ms: int = typer.Option(
            None, min=-1, envvar="AGENTBUS_TOPIC_RETENTION_MS",
            help="topic config retention.ms (-1: keep forever; unset: the broker's default)",
        ),
        min_insync_replicas: int = typer.Option(
            None, min=1, envvar="AGENTBUS_TOPIC_MIN_INSYNC_REPLICAS",
            help="topic config min.insync.replicas (unset: the broker's default; use 2 with 3 replicas)",
        ),
        prefix: str = typer.Option(None, envvar="AGENTBUS_TOPIC_PREFIX", help="topic prefix (default: agentbus)"),
        topics: bool = typer.Option(True, help="create the topics"),
        migrations: bool = typer.Option(True, help="run every service's database migrations"),
        wait: float = typer.Option(60.0, min=0, help="seconds to wait for the broker to answer"),
    ) -> None:
        """Create all topics and run all services' migrations (idempotent; run before the services start)."""
        from agentbus.logs import configure_logging

        settings = Settings()
        configure_logging("init", settings.log_level, settings.log_json)
        if prefix:
            settings.topic_prefix = prefix
        partitions = partitions or settings.topic_partitions
        replication_factor = replication_factor or settings.topic_replication_factor
        if min_insync_replicas is not None and min_insync_replicas > replication_factor:
            raise typer.BadParameter(
                f"min.insync.replicas {min_insync_replicas} is more than the replication factor {replication_factor}",
                param_hint="--min-insync-replicas",
            )
        configs = topic_configs(retention_ms, min_insync_replicas)
        try:
            asyncio.run(init(settings, partitions, replication_factor, configs, topics, migrations, wait))
        except Exception as exc:  # a clear one-line reason and a failing exit code for the Job / compose
            typer.echo(f"agentbus init failed: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo("agentbus init: done")
