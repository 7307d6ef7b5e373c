"""Messages per minute per tenant, shared by every ingress replica through ingress's PostgreSQL.

Each tenant's row holds the times of the messages admitted in the last window. Admitting one locks the row,
drops the grants older than the window and admits only while fewer than the limit remain, so two replicas
can never admit more than the limit between them (the same sliding window egress keeps for its push rate
limits, but here a message over the limit is refused at once, not delayed: the platform is told to retry
after the oldest grant leaves the window). Times come from the database's clock, the one all replicas share.
"""

from __future__ import annotations

from typing import Protocol

import structlog
from psycopg_pool import AsyncConnectionPool

from agentbus.config import PlatformConfig
from agentbus.quota_metrics import MESSAGES, QUOTA_LIMIT, QUOTA_REFUSED
from agentbus.services.ingress.ports import Verdict

log = structlog.get_logger("agentbus.ingress")


class Window(Protocol):
    async def admit(self, key: str, limit: int, window_s: float) -> Verdict: ...


class PgWindow:
    """The sliding window in the ``message_quota`` table."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def admit(self, key: str, limit: int, window_s: float) -> Verdict:
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("INSERT INTO message_quota (tenant) VALUES (%s) ON CONFLICT DO NOTHING", (key,))
            cur = await conn.execute(
                "SELECT grants, extract(epoch FROM clock_timestamp())::float8 FROM message_quota "
                "WHERE tenant = %s FOR UPDATE", (key,))
            row = await cur.fetchone()
            assert row is not None  # inserted above
            grants, now = list(row[0] or ()), float(row[1])
            kept = sorted(g for g in grants if g > now - window_s)
            verdict = Verdict(True) if len(kept) < limit else Verdict(
                False, max(kept[len(kept) - limit] + window_s - now, 0.0))
            if verdict.admitted:
                kept.append(now)
            await conn.execute("UPDATE message_quota SET grants = %s WHERE tenant = %s", (kept[-limit:], key))
        return verdict


class MessageQuota:
    """The tenants' ``quotas.messages_per_minute``; a tenant without one is never refused (nor written)."""

    def __init__(self, config: PlatformConfig, window: Window, window_s: float = 60.0) -> None:
        self._limits = {t.id: t.quotas.messages_per_minute for t in config.tenants
                        if t.quotas.messages_per_minute is not None}
        self._window = window
        self._window_s = window_s
        for tenant, limit in self._limits.items():
            QUOTA_LIMIT.labels(tenant=tenant, quota=MESSAGES).set(limit)

    async def admit(self, tenant: str) -> Verdict:
        limit = self._limits.get(tenant)
        if limit is None:
            return Verdict(True)
        try:
            verdict = await self._window.admit(tenant, limit, self._window_s)
        except Exception as exc:  # the quota protects; it must not lose messages while its table is away
            log.warning("quota_unavailable", tenant=tenant, error=f"{type(exc).__name__}: {exc}"[:200])
            return Verdict(True)
        if not verdict.admitted:
            QUOTA_REFUSED.labels(tenant=tenant, quota=MESSAGES).inc()
        return verdict
