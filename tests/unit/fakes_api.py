"""In-memory fakes of the operator API's ports, and the API served on a real loopback server over them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import httpx

from agentbus.config import PlatformConfig, parse_config
from agentbus.events import AuditRecorded, Event, JobRequested, utcnow
from agentbus.http import LoopbackServer
from agentbus.services.ingress.api.access import mint, token_hash
from agentbus.services.ingress.api.app import PREFIX, ApiDeps, api_mount, operator_api
from agentbus.services.ingress.api.auth_jwt import Signer
from agentbus.services.ingress.api.auth_keys import SigningKey
from agentbus.services.ingress.api.ports import (
    AuditEntry,
    JobsUnavailable,
    ModelsHealthReader,
    Reads,
    Role,
    StoreUnavailable,
    TokenRecord,
)


@dataclass
class FakeTokens:
    rows: dict[str, tuple[TokenRecord, bytes]] = field(default_factory=dict)
    touched: list[str] = field(default_factory=list)
    down: bool = False

    def _up(self) -> None:
        if self.down:
            raise StoreUnavailable("connection refused")

    async def create(self, record: TokenRecord, token_hash: bytes) -> None:
        self._up()
        self.rows[record.id] = (record, token_hash)

    async def find(self, token_hash: bytes) -> TokenRecord | None:
        self._up()
        return next((r for r, h in self.rows.values() if h == token_hash), None)

    async def touch(self, token_id: str) -> None:
        self.touched.append(token_id)

    async def get(self, token_id: str) -> TokenRecord | None:
        row = self.rows.get(token_id)
        return row[0] if row else None

    async def list(self, tenant: str | None = None) -> list[TokenRecord]:
        return [r for r, _ in self.rows.values() if tenant is None or r.tenant == tenant]

    async def revoke(self, token_id: str) -> bool:
        record, h = self.rows[token_id]
        if record.revoked_at is not None:
            return False
        self.rows[token_id] = (replace(record, revoked_at=utcnow()), h)
        return True

    async def delete(self, token_id: str) -> None:
        self.rows.pop(token_id, None)


@dataclass
class FakeAudit:
    events: list[AuditRecorded] = field(default_factory=list)

    async def record(self, events: Sequence[AuditRecorded]) -> None:
        for e in events:
            if all(e.id != x.id for x in self.events):
                self.events.append(e)

    async def list(self, tenant: str | None, limit: int, before: datetime | None = None) -> list[AuditEntry]:
        out = [AuditEntry(str(e.id), e.data.at, e.data.actor, e.data.actor_name, e.data.tenant, e.data.action,
                          e.data.target, e.data.outcome, e.data.detail) for e in reversed(self.events)
               if (tenant is None or e.data.tenant == tenant) and (before is None or e.data.at < before)]
        return out[:limit]


@dataclass
class FakeJobs:
    jobs: list[dict[str, Any]] = field(default_factory=list)
    down: bool = False

    async def list_jobs(self, tenant: str) -> list[dict[str, Any]]:
        if self.down:
            raise JobsUnavailable("scheduler: ConnectError")
        return [j for j in self.jobs if j["tenant"] == tenant]


@dataclass
class FakePublisher:
    published: list[Event] = field(default_factory=list)
    down: bool = False

    async def publish(self, events: Sequence[Event]) -> None:
        if self.down:
            raise ConnectionError("broker unreachable")
        self.published.extend(events)

    def commands(self) -> list[JobRequested]:
        return [e for e in self.published if isinstance(e, JobRequested)]

    def audits(self) -> list[AuditRecorded]:
        return [e for e in self.published if isinstance(e, AuditRecorded)]


@dataclass
class FakeSigningKeys:
    """Signing keys in memory, rotated as PgSigningKeys rotates them (the active key first)."""

    rows: list[SigningKey] = field(default_factory=lambda: [SigningKey("k0", b"k" * 32, utcnow())])
    reads: int = 0

    async def keys(self) -> list[SigningKey]:
        self.reads += 1
        return list(self.rows)

    async def rotate(self) -> SigningKey:
        import secrets

        now = utcnow()
        key = SigningKey(secrets.token_hex(6), secrets.token_bytes(32), now)
        self.rows = [key, *(replace(k, retired_at=k.retired_at or now) for k in self.rows)]
        return key


def config() -> PlatformConfig:
    return parse_config({
        "tenants": [{"id": "acme", "name": "Acme"}, {"id": "globex"}],
        "agents": [{"id": "assistant", "model": "qwen"}, {"id": "helper"}],
        "models": [{"name": "qwen", "base_url": "https://user:pw@llm.example.com/v1?key=k1", "model": "qwen-max",
                    "api_key": {"env": "QWEN_KEY", "default": "sk-secret-default"},
                    "headers": {"X-Org": "org-secret"}}],
        "channels": [
            {"id": "acme-hook", "type": "webhook", "tenant": "acme", "agent": "assistant",
             "secret": {"env": "ACME_SECRET", "default": "whsec_c2VjcmV0LWFjbWU="}},
            {"id": "globex-hook", "type": "webhook", "tenant": "globex", "agent": "helper",
             "secret": {"env": "GLOBEX_SECRET", "default": "whsec_c2VjcmV0LWdsb2JleA=="}},
        ],
    })


def job(tenant: str, job_id: str, channel: str) -> dict[str, Any]:
    return {"job_id": job_id, "state": "active", "source": "api",
            "schedule": {"kind": "every", "expr": "60", "timezone": "UTC"}, "timezone": "UTC",
            "next_due": "2030-01-01T00:00:00+00:00", "tenant": tenant, "channel": channel,
            "chat": {"id": "standup", "type": "group"}, "agent": None, "prompt": "standup?",
            "requested_by": "cli", "paused_at": None, "cancelled_at": None, "updated_at": None}


@dataclass
class Api:
    url: str
    client: httpx.AsyncClient
    tokens: FakeTokens
    audit: FakeAudit
    jobs: FakeJobs
    publisher: FakePublisher
    app: Any
    keys: FakeSigningKeys
    signer: Signer

    async def token(self, tenant: str | None, role: Role, name: str = "t", **kw: Any) -> str:
        record, token = mint(name, tenant, role, **kw)
        await self.tokens.create(record, token_hash(token))
        return token

    async def call(self, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        headers.update(kw.pop("headers", {}))
        return await self.client.request(method, self.url + path, headers=headers, **kw)


@asynccontextmanager
async def served_api(cfg: PlatformConfig | None = None,
                     models_health: ModelsHealthReader | None = None,
                     reads: Reads | None = None) -> AsyncIterator[Api]:
    """The operator API mounted at /api/v1 in a Starlette app on a loopback port, as ingress serves it (with
    the services' own HTTP client to the identity providers)."""
    from agentbus.httpclient import async_client

    tokens, audit, jobs, publisher, keys = FakeTokens(), FakeAudit(), FakeJobs(), FakePublisher(), FakeSigningKeys()
    signer = Signer(keys)
    http = async_client(timeout=10.0, max_connections=8)
    app = operator_api(ApiDeps(config=cfg or config(), tokens=tokens, audit=audit, jobs=jobs, publisher=publisher,
                               models_health=models_health, signer=signer, http=http, reads=reads))
    server = LoopbackServer([api_mount(app)])
    await server.start()
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            yield Api(server.url + PREFIX, client, tokens, audit, jobs, publisher, app, keys, signer)
    finally:
        await server.stop()
        await http.aclose()
