"""Running one service as a process: wiring, start-up order, readiness, graceful shutdown.

A service is described by a ``ServiceParts`` built by its bootstrap: the topic→handler table, extra HTTP
routes, readiness checks, and start/stop hooks. The runtime owns the producer, the consumer runner and the
HTTP server, and on SIGTERM stops taking work, finishes or releases what is in flight, commits, and exits 0.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import ValidationError
from starlette.routing import BaseRoute

from agentbus.bus import ConsumerRunner, Handler, Producer
from agentbus.bus.consumer import GiveUp
from agentbus.bus.kafka import ensure_config_topic, ensure_topics
from agentbus.config import ConfigError, PlatformConfig, load_document, parse_config
from agentbus.events import Event
from agentbus.http import ReadyCheck, admin_app, server
from agentbus.liveconfig import follow_config, start_live_config
from agentbus.logs import configure_logging
from agentbus.sealing import Keyring
from agentbus.sealing.keystore import open_key_store
from agentbus.security import InsecureConfiguration, check_secure_defaults, insecure_credentials
from agentbus.settings import Settings
from agentbus.telemetry import configure_tracing, shutdown_tracing
from agentbus.topics import all_topics

log = structlog.get_logger("agentbus.service")


@dataclass
class ServiceParts:
    routes: dict[type[Event], Handler] = field(default_factory=dict)  # the service's event → handler table
    give_up: dict[type[Event], GiveUp] = field(default_factory=dict)  # published beside a dead letter
    http_routes: list[BaseRoute] = field(default_factory=list)
    checks: dict[str, ReadyCheck] = field(default_factory=dict)
    on_stop: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    background: list[Callable[[], Coroutine[Any, Any, Any]]] = field(default_factory=list)
    details: dict[str, Callable[[], Any]] = field(default_factory=dict)  # shown in /readyz, not deciding it


def check_contract(service: str, parts: ServiceParts) -> None:
    """The handler table must be the service's contract (what the AsyncAPI document says it subscribes to)."""
    from agentbus.asyncapi import contract

    declared = set(contract(service).subscribes)
    if set(parts.routes) != declared:
        names = sorted(c.__name__ for c in set(parts.routes) ^ declared)
        raise RuntimeError(f"{service}: handler table and contract.SUBSCRIBES differ in {', '.join(names)}")


Bootstrap = Callable[[Settings, PlatformConfig, Producer], Awaitable[ServiceParts]]


def keyring_of(producer: Producer) -> Keyring:
    """The keyring ``serve`` gave the service's producer: a bootstrap's stores seal and open with the same one."""
    if producer.keyring is None:
        raise RuntimeError("the service's producer has no keyring")
    return producer.keyring


async def serve(service: str, bootstrap: Bootstrap, settings: Settings, config: PlatformConfig,
                document: dict[str, Any]) -> None:
    """Run ``service`` until SIGTERM. ``config`` and ``document`` are the file's: they seed the platform's
    configuration when none is published yet; otherwise the published one is what runs (and is followed)."""
    if settings.create_topics:
        created = await ensure_topics(settings, all_topics(settings.topic_prefix))
        if await ensure_config_topic(settings) == "created":
            created.append("config")
        if created:
            log.info("topics_created", count=len(created), partitions=settings.topic_partitions)
    # the people's data keys: the producer seals their text with them, the consumer opens it (agentbus.sealing)
    key_store, key_pool = await open_key_store(settings)
    producer = Producer(settings, service, Keyring(key_store, settings.key_cache_s))
    await producer.start()
    live, config_start = await start_live_config(settings, service, document, config, producer)
    check_secure_defaults(live.current, settings, f"configuration version {live.version}")
    if not settings.dev_mode:
        live.check(lambda new: insecure_credentials(new, settings))
    parts = await bootstrap(settings, live.as_config(), producer)
    check_contract(service, parts)
    parts.background.append(lambda: follow_config(settings, live, config_start))
    parts.details["config"] = lambda: {"version": live.version, "digest": live.applied.digest[:12],
                                       "actor": live.applied.actor}
    consumer: ConsumerRunner | None = None
    if parts.routes:
        consumer = ConsumerRunner(settings, service, producer, parts.routes, give_up=parts.give_up,
                                  keyring=producer.keyring)
        await consumer.start()

        async def consuming() -> tuple[bool, str]:
            return consumer.assigned, "partitions assigned" if consumer.assigned else "waiting for assignment"

        parts.checks = {"consumer": consuming, **parts.checks}

    app = admin_app(service, parts.checks, parts.http_routes, parts.details)
    srv = server(app, settings.http_host, settings.port_for(service))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    tasks: list[asyncio.Task[Any]] = [asyncio.create_task(srv.serve(), name="http")]
    if consumer is not None:
        tasks.append(asyncio.create_task(consumer.run(), name="consumer"))
    tasks += [asyncio.create_task(b(), name="background") for b in parts.background]
    log.info("service_started", port=settings.port_for(service), events=sorted(c.TYPE for c in parts.routes))

    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({stopper, *tasks}, return_when=asyncio.FIRST_COMPLETED)
    failed = [t for t in done if t is not stopper and not t.cancelled() and t.exception() is not None]
    for t in failed:
        log.error("service_task_failed", task=t.get_name(), error=repr(t.exception()))
    log.info("service_stopping")

    # 1. stop accepting: the HTTP server finishes in-flight requests; 2. the consumer drains and commits
    srv.should_exit = True
    if consumer is not None:
        await consumer.stop()
    for t in tasks:
        if t.get_name() == "background":
            t.cancel()
    await asyncio.wait(tasks, timeout=settings.shutdown_grace_s + 10)
    if consumer is not None:
        await consumer.close()
    for hook in parts.on_stop:
        try:
            await hook()
        except Exception as exc:  # shutting down anyway; report it
            log.warning("stop_hook_failed", error=repr(exc))
    await producer.stop()
    await key_pool.close()
    shutdown_tracing()
    log.info("service_stopped")
    if failed:
        raise SystemExit(1)


def run(service: str) -> None:
    """Entry point of ``agentbus run <service>``."""
    import importlib

    try:
        settings = Settings()
    except ValidationError as err:  # a setting out of range (a pruning horizon shorter than redelivery, say)
        print(f"agentbus {service}: invalid settings (AGENTBUS_*):\n{err}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(service, settings.log_level, settings.log_json, settings.debug_log_bodies)
    structlog.contextvars.bind_contextvars(environment=settings.environment)
    configure_tracing(service, settings.otlp_endpoint, settings.environment)
    try:
        document = load_document(settings.config_file)
        config = parse_config(document, source=str(settings.config_file))
        check_secure_defaults(config, settings, str(settings.config_file))
    except (ConfigError, InsecureConfiguration) as err:
        print(f"agentbus {service}: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    bootstrap: Bootstrap = importlib.import_module(f"agentbus.services.{service}.bootstrap").bootstrap
    import uvloop

    try:
        uvloop.run(serve(service, bootstrap, settings, config, document))
    except InsecureConfiguration as err:  # the published configuration, which a writer had let through
        print(f"agentbus {service}: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except ConfigError as err:  # found while wiring (a tool an agent names that no source provides, say)
        print(f"agentbus {service}: {settings.config_file}: {err}", file=sys.stderr)
        raise SystemExit(2) from None
