"""LLM tokens per tenant per UTC day (``tenants[].quotas.llm_tokens_per_day``).

Every inference.completed that called a model adds its input and output tokens to its tenant's day, once
(keyed by the event's id, in the same transaction as the sum, so a redelivered input that is answered again
from the ledger adds nothing, and one whose count failed is counted on the redelivery). Before a model is
called, the tenant's day so far is read: once it has reached the limit, the agent answers with the tenant's
``budget_used_up_text`` and calls no model. The answer that crosses the limit is finished, so a day may end
a little over it (by at most the answers that were running at once).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date
from typing import Protocol

import structlog
from psycopg_pool import AsyncConnectionPool

from agentbus.config import PlatformConfig
from agentbus.events import Event, InferenceCompleted, utcnow
from agentbus.quota_metrics import QUOTA_LIMIT, QUOTA_REFUSED, QUOTA_TOKENS_USED, TOKENS

log = structlog.get_logger("agentbus.reasoner")


class UsageStore(Protocol):
    async def used(self, tenant: str, day: date) -> int: ...

    async def add(self, inference_id: uuid.UUID, tenant: str, day: date, tokens: int) -> int:
        """Add an inference's tokens once; the day's total after it."""
        ...


class PgUsage:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def used(self, tenant: str, day: date) -> int:
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT tokens FROM token_usage WHERE tenant = %s AND day = %s", (tenant, day))
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def add(self, inference_id: uuid.UUID, tenant: str, day: date, tokens: int) -> int:
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute("INSERT INTO token_usage_counted (inference_id) VALUES (%s) "
                                     "ON CONFLICT DO NOTHING", (inference_id,))
            added = tokens if cur.rowcount == 1 else 0
            cur = await conn.execute(
                "INSERT INTO token_usage AS u (tenant, day, tokens) VALUES (%s, %s, %s) "
                "ON CONFLICT (tenant, day) DO UPDATE SET tokens = u.tokens + EXCLUDED.tokens RETURNING tokens",
                (tenant, day, added))
            row = await cur.fetchone()
        assert row is not None  # an upsert returns its row
        return int(row[0])


class TokenBudget:
    """The tenants' daily token limits; tenants without one are neither checked nor counted."""

    def __init__(self, config: PlatformConfig, store: UsageStore) -> None:
        self._limits = {t.id: t.quotas.llm_tokens_per_day for t in config.tenants
                        if t.quotas.llm_tokens_per_day is not None}
        self._texts = {t.id: t.quotas.budget_used_up_text for t in config.tenants}
        self._store = store
        for tenant, limit in self._limits.items():
            QUOTA_LIMIT.labels(tenant=tenant, quota=TOKENS).set(limit)

    async def used_up(self, tenant: str) -> str | None:
        """The text to answer with instead of calling a model, when the tenant's day is used up."""
        limit = self._limits.get(tenant)
        if limit is None:
            return None
        try:
            used = await self._store.used(tenant, utcnow().date())
        except Exception as exc:  # the budget protects; it must not stop answers while its table is away
            log.warning("token_budget_unavailable", tenant=tenant, error=f"{type(exc).__name__}: {exc}"[:200])
            return None
        QUOTA_TOKENS_USED.labels(tenant=tenant).set(used)
        if used < limit:
            return None
        QUOTA_REFUSED.labels(tenant=tenant, quota=TOKENS).inc()
        log.info("token_budget_used_up", tenant=tenant, used=used, limit=limit)
        return self._texts[tenant]

    async def count(self, outputs: Sequence[Event]) -> None:
        """Add the tokens of the model calls among an answer's outputs (raises: the answer is retried, and
        its redelivery, answered from the ledger, counts them)."""
        for e in outputs:
            if not isinstance(e, InferenceCompleted) or e.data.reused or e.tenant not in self._limits:
                continue
            tokens = (e.data.usage.input_tokens or 0) + (e.data.usage.output_tokens or 0)
            if tokens:
                total = await self._store.add(e.id, e.tenant, e.occurred_at.astimezone(UTC).date(), tokens)
                QUOTA_TOKENS_USED.labels(tenant=e.tenant).set(total)
