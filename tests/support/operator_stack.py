"""The operator API as ingress serves it, on real PostgreSQL, run on an event loop of its own thread.

A fuzzer that calls the API synchronously (schemathesis sends its requests with ``requests``) needs the
server on another loop than the caller's. The stores are the real ones on migrated schemas (tokens, audit
log, signing keys in ingress's; jobs read over HTTP from the scheduler's own ``/v1/jobs`` on the scheduler's
schema; conversations, memories, deliveries, inferences and usage from memory's, egress's and the reasoner's
own admin routes on their schemas; channel states from ingress's table; traces, dead letters and replay runs
from the real broker's log; configuration writes serialised on the PostgreSQL advisory lock). Only the bus's
producer is a recording fake:
it keeps what was published, applies each ``config.changed`` as every replica's follower would, and hands
each ``audit.recorded`` to ingress's audit consumer, so what the API writes is what it reads back.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine, Sequence
from concurrent.futures import Future
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from agentbus.config import parse_config
from agentbus.configwriter import ConfigWriter, pg_lock
from agentbus.events import AuditRecorded, Chat, ConfigChanged, Event
from agentbus.http import LoopbackServer
from agentbus.httpclient import async_client
from agentbus.jobs import build_command, job_requested, schedule_of
from agentbus.liveconfig import Applied, LiveConfig, changed_event, digest
from agentbus.services.egress.routes import PgDeliveries, delivery_routes
from agentbus.services.ingress.api.access import mint, token_hash
from agentbus.services.ingress.api.app import PREFIX, ApiDeps, api_mount, operator_api
from agentbus.services.ingress.api.audit import AuditRecorder
from agentbus.services.ingress.api.auth_jwt import Signer
from agentbus.services.ingress.api.auth_keys import PgSigningKeys
from agentbus.services.ingress.api.eventlog import LogDeadLetters, LogReplays
from agentbus.services.ingress.api.history import EgressDeliveries, EventLogTrace, MemoryHistory, ReasonerInferences
from agentbus.services.ingress.api.ports import Reads, Role
from agentbus.services.ingress.api.scheduler import SchedulerJobs
from agentbus.services.ingress.api.store import PgAuditLog, PgTokenStore
from agentbus.services.ingress.channelstate import PgChannelStates
from agentbus.services.memory.history import PgHistory, history_routes
from agentbus.services.memory.inprocessvectors import InProcessVectorIndex
from agentbus.services.memory.knowledgestore import PgKnowledgeCatalogue
from agentbus.services.memory.routes import knowledge_routes, memory_routes
from agentbus.services.reasoner.routes import PgInferences, inference_routes
from agentbus.services.scheduler.handlers import Scheduler
from agentbus.services.scheduler.routes import job_routes
from agentbus.services.scheduler.store import PgJobStore
from agentbus.settings import Settings
from tests.support.db import service_pool

T = TypeVar("T")
SEED: dict[str, Any] = {  # credentials are environment references only: production validation refuses defaults
    "tenants": [{"id": "acme", "name": "Acme"}, {"id": "globex"}],
    "agents": [{"id": "assistant", "model": "echo"}, {"id": "helper", "model": "echo"}],
    "models": [{"name": "fake", "base_url": "http://127.0.0.1:9/v1", "model": "fake-model",
                "api_key": {"env": "FUZZ_MODEL_KEY"}}],
    "channels": [{"id": f"{t}-hook", "type": "webhook", "tenant": t, "agent": "assistant",
                  "secret": {"env": f"FUZZ_SECRET_{t.upper()}"}} for t in ("acme", "globex")],
    "jobs": [],
}
JOB_ID = "standup"
# what the seed's references name (set by the caller for the stack's lifetime; any non-demo value will do)
ENV = {"FUZZ_MODEL_KEY": "sk-fuzz", "FUZZ_SECRET_ACME": "whsec_ZnV6ei1hY21lLXNlY3JldC0wMTIzNDU2Nzg5",
       "FUZZ_SECRET_GLOBEX": "whsec_ZnV6ei1nbG9iZXgtc2VjcmV0LTAxMjM0NTY3ODk="}


@dataclass
class RecordingBus:
    """The API's publisher: records every event, and applies what the platform's consumers would."""

    live: LiveConfig
    audit: AuditRecorder
    published: list[Event] = field(default_factory=list)
    config_log: list[ConfigChanged] = field(default_factory=list)
    raw: list[tuple[str, bytes]] = field(default_factory=list)  # records sent as they are (redrives)

    async def publish(self, events: Sequence[Event]) -> None:
        self.published.extend(events)
        for e in events:
            if isinstance(e, ConfigChanged):
                self.config_log.append(e)
                await self.live.apply(e)
            elif isinstance(e, AuditRecorded):
                await self.audit.keep_audit(e)

    async def send_raw(self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        self.raw.append((topic, value))

    def commands(self) -> list[Event]:
        """What was published besides audit events (configuration versions and job commands)."""
        return [e for e in self.published if not isinstance(e, AuditRecorded)]


class LoggedConfigWriter(ConfigWriter):
    """The real writer (lock, validation, diff, versioning) reading the newest version from the recorded log
    instead of the broker's topic."""

    def __init__(self, settings: Settings, bus: RecordingBus) -> None:
        super().__init__(settings, bus, pg_lock(settings.database_url, settings.topic_prefix), "ingress")
        self._bus = bus

    async def current(self) -> ConfigChanged:
        return max(self._bus.config_log, key=lambda e: e.data.version)


@dataclass
class Stack:
    url: str  # the API's base URL (…/api/v1)
    bus: RecordingBus
    tokens: dict[str, str]  # name → bearer token
    token_ids: dict[str, str]

    async def reset_config(self) -> None:
        """Publish the seed again when a write changed it, so each example starts from the same platform."""
        if self.bus.live.applied.digest != digest(SEED):
            await self.bus.publish([changed_event(SEED, self.bus.live.version + 1, actor="test", reason="apply",
                                                  changes=["reset"], source="ingress")])


@asynccontextmanager
async def operator_stack(database_url: str, bootstrap: str) -> AsyncIterator[Stack]:
    async with AsyncExitStack() as stack:
        ingress_pool = await stack.enter_async_context(service_pool(database_url, "ingress"))
        scheduler_pool = await stack.enter_async_context(service_pool(database_url, "scheduler"))
        settings = Settings(database_url=database_url, kafka_bootstrap_servers=bootstrap,
                            topic_prefix=f"fuzz{uuid.uuid4().hex[:8]}")
        config = parse_config(SEED)
        seed = changed_event(SEED, 1, actor="ingress:file", reason="seed", changes=["seeded"], source="ingress")
        live = LiveConfig(config, Applied(1, SEED, seed.data.digest, seed.data.at, seed.data.actor))
        audit_log = PgAuditLog(ingress_pool)
        bus = RecordingBus(live, AuditRecorder(audit_log), config_log=[seed])

        jobs_store = PgJobStore(scheduler_pool)
        cmd = build_command("create", JOB_ID, requested_by="test", schedule=schedule_of(every_s=3600),
                            channel="acme-hook", chat=Chat(id="team", type="group"), prompt="standup?")
        await Scheduler(config, jobs_store, bus).apply_command(
            job_requested(cmd, tenant="acme", channel="acme-hook", chat="team", source="test"))
        bus.published.clear()
        scheduler = LoopbackServer(job_routes(jobs_store))
        await scheduler.start()
        stack.push_async_callback(scheduler.stop)

        admins = {}
        for service, routes in (("memory", lambda pool: [*history_routes(PgHistory(pool)),
                                                         *memory_routes(InProcessVectorIndex(pool, 8)),
                                                         *knowledge_routes(PgKnowledgeCatalogue(pool))]),
                                ("egress", lambda pool: delivery_routes(PgDeliveries(pool))),
                                ("reasoner", lambda pool: inference_routes(PgInferences(pool)))):
            pool = await stack.enter_async_context(service_pool(database_url, service))
            admin = LoopbackServer(routes(pool))
            await admin.start()
            stack.push_async_callback(admin.stop)
            admins[service] = admin.url

        http = async_client(timeout=10.0, max_connections=16)
        stack.push_async_callback(http.aclose)
        memory = MemoryHistory(admins["memory"], http)
        reads = Reads(history=memory, knowledge=memory,
                      deliveries=EgressDeliveries(admins["egress"], http),
                      inferences=ReasonerInferences(admins["reasoner"], http), trace=EventLogTrace(settings))
        tokens_store = PgTokenStore(ingress_pool)
        deps = ApiDeps(config=live.as_config(), tokens=tokens_store, audit=audit_log,
                       jobs=SchedulerJobs(scheduler.url, http), publisher=bus,
                       signer=Signer(PgSigningKeys(ingress_pool)), http=http,
                       config_writer=LoggedConfigWriter(settings, bus), live=live, reads=reads,
                       dead_letters=LogDeadLetters(settings, bus), replays=LogReplays(settings),
                       channel_states=PgChannelStates(ingress_pool))
        server = LoopbackServer([api_mount(operator_api(deps))])
        await server.start()
        stack.push_async_callback(server.stop)

        tokens, ids = {}, {}
        grants: list[tuple[str, str | None, Role]] = [("owner", None, "owner"), ("acme-viewer", "acme", "viewer"),
                                                      ("acme-admin", "acme", "admin")]
        for name, tenant, role in grants:
            record, token = mint(name, tenant, role)
            await tokens_store.create(record, token_hash(token))
            tokens[name], ids[name] = token, record.id
        yield Stack(server.url + PREFIX, bus, tokens, ids)


class ThreadedStack:
    """``operator_stack`` entered on a loop in a daemon thread; ``run`` executes a coroutine there."""

    def __init__(self, database_url: str, bootstrap: str) -> None:
        self._db = database_url
        self._bootstrap = bootstrap
        self._loop = asyncio.new_event_loop()
        self._ready: Future[Stack] = Future()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="operator-api", daemon=True)

    def __enter__(self) -> Stack:
        self._thread.start()
        return self._ready.result(timeout=60)

    def __exit__(self, *_: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=timeout_s)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        try:
            async with operator_stack(self._db, self._bootstrap) as stack:
                self._ready.set_result(stack)
                await self._stop.wait()
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
            raise
