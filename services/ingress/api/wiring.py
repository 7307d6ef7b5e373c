"""The operator API's adapters, built for ingress's bootstrap: PostgreSQL stores on ingress's pool, the
admin endpoints of the scheduler, the reasoner, memory and egress, the event log (dead letters, replay runs,
traces), the service's producer, the app mounted at ``/api/v1``."""

from __future__ import annotations

import httpx
from psycopg_pool import AsyncConnectionPool
from starlette.routing import Mount

from agentbus.bus import Producer
from agentbus.config import PlatformConfig
from agentbus.configwriter import ConfigWriter, pg_lock
from agentbus.httpclient import async_client
from agentbus.liveconfig import live_of
from agentbus.logindex import LogIndex
from agentbus.services.ingress.api.app import ApiDeps, api_mount, operator_api
from agentbus.services.ingress.api.audit import AuditRecorder
from agentbus.services.ingress.api.auth_jwt import Signer
from agentbus.services.ingress.api.auth_keys import PgSigningKeys
from agentbus.services.ingress.api.eventlog import LogDeadLetters, LogReplays
from agentbus.services.ingress.api.history import EgressDeliveries, EventLogTrace, MemoryHistory, ReasonerInferences
from agentbus.services.ingress.api.ports import ChannelStatesReader, Reads
from agentbus.services.ingress.api.reasoner import ReasonerHealth
from agentbus.services.ingress.api.scheduler import SchedulerJobs
from agentbus.services.ingress.api.store import PgAuditLog, PgTokenStore
from agentbus.settings import DEFAULT_PORTS, Settings

__all__ = ["AuditRecorder", "operator_api_mount"]


def scheduler_url(settings: Settings) -> str:
    return (settings.scheduler_url or f"http://127.0.0.1:{DEFAULT_PORTS['scheduler']}").rstrip("/")


def reasoner_url(settings: Settings) -> str:
    return (settings.reasoner_url or f"http://127.0.0.1:{DEFAULT_PORTS['reasoner']}").rstrip("/")


def memory_url(settings: Settings) -> str:
    return (settings.memory_url or f"http://127.0.0.1:{DEFAULT_PORTS['memory']}").rstrip("/")


def egress_url(settings: Settings) -> str:
    return (settings.egress_url or f"http://127.0.0.1:{DEFAULT_PORTS['egress']}").rstrip("/")


def operator_api_mount(settings: Settings, config: PlatformConfig, pool: AsyncConnectionPool,
                       producer: Producer, index: LogIndex | None = None,
                       channel_states: ChannelStatesReader | None = None
                       ) -> tuple[Mount, PgAuditLog, httpx.AsyncClient]:
    audit_log = PgAuditLog(pool)
    http = async_client(timeout=10.0, max_connections=16)
    live = live_of(config)
    writer = ConfigWriter(settings, producer, pg_lock(settings.database_url, settings.topic_prefix), "ingress")
    deps = ApiDeps(config=config, tokens=PgTokenStore(pool), audit=audit_log,
                   jobs=SchedulerJobs(scheduler_url(settings), http), publisher=producer,
                   models_health=ReasonerHealth(reasoner_url(settings), http),
                   signer=Signer(PgSigningKeys(pool)), http=http,
                   config_writer=writer if live is not None else None, live=live,
                   dead_letters=LogDeadLetters(settings, producer), replays=LogReplays(settings, producer.keyring),
                   reads=Reads(history=(memory := MemoryHistory(memory_url(settings), http)), knowledge=memory,
                               deliveries=EgressDeliveries(egress_url(settings), http),
                               inferences=ReasonerInferences(reasoner_url(settings), http),
                               trace=EventLogTrace(settings, keyring=producer.keyring, index=index)),
                   channel_states=channel_states)
    return api_mount(operator_api(deps)), audit_log, http
