"""What the operator API reads and writes outside itself, as small Protocols (tests use fakes of these).

Tokens and the audit log live in ingress's PostgreSQL schema (``store.py``); jobs are read from the
scheduler's admin endpoint (``scheduler.py``); every write to another service is a command event given to
the ``Publisher`` (the kernel's producer: it returns once the broker has acknowledged).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from agentbus.events import AuditRecorded, Event

Role = Literal["owner", "admin", "operator", "viewer"]
TenantRole = Literal["admin", "operator", "viewer"]


@dataclass(frozen=True)
class TokenRecord:
    """An API token as stored: never its secret, only the sha256 of the whole token beside it."""

    id: str
    name: str
    tenant: str | None  # None: an owner token (every tenant)
    role: Role
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


@dataclass(frozen=True)
class AuditEntry:
    event_id: str
    at: datetime
    actor: str
    actor_name: str | None
    tenant: str | None
    action: str
    target: str
    outcome: str
    detail: str


class StoreUnavailable(Exception):
    """The token or audit store could not answer (the request is answered 503, never 500)."""


class TokenStore(Protocol):
    async def create(self, record: TokenRecord, token_hash: bytes) -> None: ...

    async def find(self, token_hash: bytes) -> TokenRecord | None:
        """The token whose hash this is, revoked and expired ones included (the caller says why it fails)."""
        ...

    async def touch(self, token_id: str) -> None:
        """Note that the token was used (at most about once a minute is written)."""
        ...

    async def get(self, token_id: str) -> TokenRecord | None: ...

    async def list(self, tenant: str | None = None) -> list[TokenRecord]:
        """Every token, or those of one tenant (owner tokens have none)."""
        ...

    async def revoke(self, token_id: str) -> bool:
        """Revoke a token that is not revoked yet; False when there was nothing to revoke."""
        ...

    async def delete(self, token_id: str) -> None:
        """Remove a token that was never handed out (its creation could not be audited)."""
        ...


class AuditLog(Protocol):
    async def record(self, events: Sequence[AuditRecorded]) -> None:
        """Keep each event once (by its id): a redelivered event changes nothing."""
        ...

    async def list(self, tenant: str | None, limit: int, before: datetime | None = None) -> list[AuditEntry]:
        """Newest first; ``tenant`` None means every tenant and the platform-wide entries."""
        ...


class JobsUnavailable(Exception):
    """The scheduler's admin endpoint could not be read."""


class JobsReader(Protocol):
    async def list_jobs(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's jobs as the scheduler's ``/v1/jobs`` serves them; raises ``JobsUnavailable``."""
        ...


class ModelsHealthReader(Protocol):
    async def health(self) -> dict[str, dict[str, Any]] | None:
        """The reasoner's ``/v1/models/health`` (model name → its health), None when it cannot be read."""
        ...


class Publisher(Protocol):
    async def publish(self, events: Sequence[Event]) -> None: ...


class ConfigWriting(Protocol):
    """Publishes the next version of the configuration (``agentbus.configwriter.ConfigWriter``)."""

    async def write(self, edit: Any, *, actor: str, reason: str, expected_version: int | None = None,
                    dry_run: bool = False) -> Any: ...


class ReadUnavailable(Exception):
    """A service behind a read (its admin endpoint, or the event log) could not answer: 503 with the reason."""


class ReadRefused(Exception):
    """The service behind a read refused what it was asked (a cursor it did not make): 422 with the reason."""


Page = dict[str, Any]  # {"items": [...], "next_before": cursor or None}, as the services' listings answer


class HistoryReader(Protocol):
    """Memory's conversation history (``GET /v1/conversations``, ``.../{conversation}/turns``) and the memories
    it keeps."""

    async def conversations(self, tenant: str, limit: int, before: str | None) -> Page: ...

    async def turns(self, tenant: str, conversation: str, limit: int, before: str | None) -> Page | None:
        """None: the tenant has no such conversation."""
        ...

    async def memories(self, tenant: str, conversation: str, limit: int) -> Page:
        """The memories made in the conversation, newest first (``GET /v1/conversations/{key}/memories``)."""
        ...

    async def memory(self, tenant: str, memory_id: str) -> dict[str, Any] | None:
        """One memory of the tenant (``GET /v1/memories/{id}``); None: it has none by that id."""
        ...


class KnowledgeReader(Protocol):
    """The documents of a tenant's knowledge base, as memory lists them (``GET /v1/knowledge``)."""

    async def documents(self, tenant: str, removed: bool = False) -> list[dict[str, Any]]: ...


class DeliveriesReader(Protocol):
    """Egress's delivery ledger (``GET /v1/deliveries``)."""

    async def deliveries(self, tenant: str, limit: int, before: str | None, filters: dict[str, str]) -> Page: ...


class InferencesReader(Protocol):
    """The reasoner's inference ledger (``GET /v1/inferences``)."""

    async def inferences(self, tenant: str, limit: int, before: str | None, filters: dict[str, str]) -> Page: ...

    async def usage(self, tenant: str, params: dict[str, str]) -> Page:
        """Answers, tokens and latency per bucket and agent (``GET /v1/usage``: bucket, since, until, agent)."""
        ...


class TraceReader(Protocol):
    async def trace(self, tenant: str, wanted: str, since: datetime, until: datetime) -> list[Any] | None:
        """The tenant's events of the chain ``wanted`` is part of (``agentbus.eventlog.Logged``, in order)
        that occurred in the window; None when none did."""
        ...


@dataclass(frozen=True)
class Reads:
    """Where the operator API reads what happened: each service's own state, and the event log."""

    history: HistoryReader
    deliveries: DeliveriesReader
    inferences: InferencesReader
    trace: TraceReader
    knowledge: KnowledgeReader | None = None  # memory's knowledge catalogue (None: not served)


@dataclass(frozen=True)
class ChannelStateRow:
    """One replica's view of one channel, as it last wrote it (``agentbus.services.ingress.channelstate``)."""

    channel: str
    replica: str
    view: dict[str, Any]  # {"webhook": counters or None, "connection": the /readyz entry or None}
    updated_at: datetime
    age_s: float  # by the database's clock


class ChannelStatesReader(Protocol):
    async def states(self, channels: Sequence[str]) -> list[ChannelStateRow]:
        """Every replica's latest view of these channels (rows of the last day), newest first per channel."""
        ...
