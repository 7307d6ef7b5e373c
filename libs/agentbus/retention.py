"""Retention: each service deletes its own old rows, in bounded batches, on a periodic task.

Two kinds of rows are pruned. A tenant's data (memory's turns, the reasoner's inference ledger, egress's
deliveries) is kept for the tenant's ``retention`` days (``tenants[].retention``, else the platform's default
from the settings; 0 keeps it forever). The records that make a redelivery change nothing (every service's
processed events, ingress's de-duplication of platform event ids, the scheduler's firings) are kept for the
pruning horizon, a safe multiple of the longest time Kafka or a platform can hand an event back: see
docs/decisions/0007-retention.md for the window and why the horizon is safe. A ledger is never pruned sooner
than that horizon, because the ledger itself answers a redelivered event (egress claims a reply by inserting
its delivery row).

Every replica runs the task; a session advisory lock per schema lets one prune at a time (the others skip that
round), and each batch deletes rows by their ctid under the same condition that chose them, so a pass that
races another deletes nothing twice and nothing it should keep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

import structlog
from prometheus_client import Counter

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

    from agentbus.config import PlatformConfig
    from agentbus.settings import Settings

log = structlog.get_logger("agentbus.retention")

PRUNED = Counter("agentbus_retention_pruned_rows_total", "Rows deleted by retention, by schema and table",
                 ["schema", "table"])
PRUNE_FAILURES = Counter("agentbus_retention_failures_total", "Retention passes that failed, by schema",
                         ["schema"])

# Kafka's default retention.ms (log.retention.hours=168): what an unset AGENTBUS_TOPIC_RETENTION_MS means
KAFKA_DEFAULT_RETENTION_DAYS = 7.0
# the longest a platform keeps retrying one event into ingress, with room to spare: Feishu about 7.1 h (accepted
# for 8 h), Telegram keeps unconfirmed updates 24 h, Standard Webhooks senders commonly retry for about a day;
# Slack, WeCom and DingTalk give up within minutes
PLATFORM_RETRY_DAYS = 2.0
HORIZON_MULTIPLE = 2.0

Kind = Literal["turns", "ledger", "deliveries"]
# what must go before a batch of a tenant's rows is deleted (memory's vectors of the turns): given the tenant
# and the rows' keys; it must be idempotent, since a pass cut short repeats it with the same rows
BeforeDelete = Callable[[str, list[Any]], Awaitable[object]]


def redelivery_window_days(topic_retention_ms: int | None) -> float | None:
    """The longest an event can take to reach a consumer (or ingress) again; None: unbounded (-1)."""
    if topic_retention_ms == -1:
        return None
    topic = KAFKA_DEFAULT_RETENTION_DAYS if topic_retention_ms is None else topic_retention_ms / 86_400_000
    return max(topic, PLATFORM_RETRY_DAYS)


def horizon_problem(horizon_days: float | None, topic_retention_ms: int | None) -> str | None:
    """Why a configured pruning horizon is unsafe, or None."""
    if horizon_days is None:
        return None
    window = redelivery_window_days(topic_retention_ms)
    if window is None:
        return (f"prune_horizon_days ({horizon_days:g}) is set but topic_retention_ms is -1: topics keep "
                "records forever, so any processed record may still be needed; set a finite topic retention "
                "or leave prune_horizon_days unset (processed records are then kept forever)")
    if horizon_days < window:
        return (f"prune_horizon_days ({horizon_days:g}) is shorter than the longest redelivery window "
                f"({window:g} days: the topics' retention, or two days of platform retries): a record pruned that "
                "early could let a redelivered event be processed twice")
    return None


def horizon_days(settings: Settings) -> float | None:
    """The pruning horizon in days: the setting, else twice the redelivery window; None: keep forever."""
    if settings.prune_horizon_days is not None:
        return settings.prune_horizon_days
    window = redelivery_window_days(settings.topic_retention_ms)
    return None if window is None else HORIZON_MULTIPLE * window


def tenant_days(config: PlatformConfig, settings: Settings, kind: Kind) -> tuple[int, dict[str, int]]:
    """The default days of ``kind`` and each tenant's own where it names one (0: forever)."""
    default: int = getattr(settings, f"retention_{kind}_days")
    own = {t.id: days for t in config.tenants if (days := getattr(t.retention, f"{kind}_days")) is not None}
    return default, own


@dataclass(frozen=True)
class Table:
    """One table a service prunes: rows whose ``at`` column is older than the cut-off and match ``where``.

    ``tenant_kind`` names the tenant retention that applies (its ``tenant`` column chooses the tenant's days);
    without one the table holds redelivery records, kept for the horizon. With ``before_delete`` a batch is
    chosen by its ``key`` column, handed to it per tenant, then deleted by key."""

    name: str
    at: str
    tenant_kind: Kind | None = None
    where: str = "true"
    key: str | None = None
    before_delete: BeforeDelete | None = field(default=None, compare=False)


@dataclass
class Pruner:
    pool: AsyncConnectionPool
    schema: str
    tables: Sequence[Table]
    config: PlatformConfig
    settings: Settings

    async def run(self) -> None:
        """Prune every ``retention_interval_s`` (the first pass a minute after start, or sooner)."""
        await asyncio.sleep(min(60.0, self.settings.retention_interval_s))
        while True:
            try:
                await self.prune_once()
            except Exception as exc:  # the next pass tries again; the service itself is unaffected
                PRUNE_FAILURES.labels(schema=self.schema).inc()
                log.error("retention_failed", schema=self.schema, error=f"{type(exc).__name__}: {exc}"[:300])
            await asyncio.sleep(self.settings.retention_interval_s)

    async def prune_once(self) -> dict[str, int] | None:
        """One pass over every table; rows deleted per table, or None when another replica is pruning."""
        lock = f"agentbus.retention.{self.schema}"
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (lock,))
            row = await cur.fetchone()
            if row is None or not row[0]:
                return None
            try:
                counts = {t.name: 0 for t in self.tables}
                for table in self.tables:
                    for where, params in self._conditions(table):
                        counts[table.name] += await self._delete(conn, table, where, params)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (lock,))
        pruned = {k: v for k, v in counts.items() if v}
        if pruned:
            log.info("retention_pruned", schema=self.schema, rows=pruned)
        return counts

    def _conditions(self, table: Table) -> list[tuple[str, dict[str, Any]]]:
        """The conditions (with their parameters) whose rows are past retention now."""
        horizon = horizon_days(self.settings)
        if table.tenant_kind is None:
            if horizon is None:
                return []
            return [(f"{table.at} < now() - %(age)s", {"age": timedelta(days=horizon)})]
        default, own = tenant_days(self.config, self.settings, table.tenant_kind)
        floor = horizon or 0.0

        def age(days: int) -> timedelta:
            if days < floor:
                log.warning("retention_raised", schema=self.schema, table=table.name, days=days, to=floor,
                            reason="a ledger answers redelivered events: it is kept for the pruning horizon")
            return timedelta(days=max(days, floor))

        out = [(f"tenant = %(tenant)s AND {table.at} < now() - %(age)s", {"tenant": t, "age": age(days)})
               for t, days in sorted(own.items()) if days > 0]
        if default > 0:  # every other tenant's rows, and rows from before the ledgers kept their tenant
            out.append((f"(tenant IS NULL OR tenant <> ALL(%(own)s::text[])) AND {table.at} < now() - %(age)s",
                        {"own": sorted(own), "age": age(default)}))
        return out

    async def _delete(self, conn: AsyncConnection, table: Table, where: str, params: dict[str, Any]) -> int:
        """Delete the matching rows a batch at a time (each batch its own short transaction)."""
        if table.before_delete is not None:
            return await self._delete_keyed(conn, table, where, params)
        cond = f"({where}) AND ({table.where})"
        sql = (f"DELETE FROM {table.name} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table.name} WHERE {cond} "
               f"LIMIT %(limit)s)) AND {cond}")
        total = 0
        while True:
            cur = await conn.execute(sql, {**params, "limit": self.settings.retention_batch})
            total += cur.rowcount
            if cur.rowcount:
                PRUNED.labels(schema=self.schema, table=table.name).inc(cur.rowcount)
            if cur.rowcount < self.settings.retention_batch:
                return total


    async def _delete_keyed(self, conn: AsyncConnection, table: Table, where: str, params: dict[str, Any]) -> int:
        """Batches chosen first, handed to ``before_delete`` per tenant, then deleted: a pass cut short in
        between finds the same rows again next time."""
        assert table.before_delete is not None and table.key is not None
        cond = f"({where}) AND ({table.where})"
        total = 0
        while True:
            cur = await conn.execute(f"SELECT tenant, {table.key} FROM {table.name} WHERE {cond} LIMIT %(limit)s",
                                     {**params, "limit": self.settings.retention_batch})
            rows = await cur.fetchall()
            by_tenant: dict[str, list[Any]] = {}
            for tenant, key in rows:
                by_tenant.setdefault(tenant, []).append(key)
            for tenant, keys in by_tenant.items():
                await table.before_delete(tenant, keys)
            if rows:
                cur = await conn.execute(f"DELETE FROM {table.name} WHERE {table.key} = ANY(%(keys)s) AND {cond}",
                                         {**params, "keys": [k for _, k in rows]})
                total += cur.rowcount
                PRUNED.labels(schema=self.schema, table=table.name).inc(cur.rowcount)
            if len(rows) < self.settings.retention_batch:
                return total


PROCESSED = Table("processed_events", "processed_at")


def pruner(pool: AsyncConnectionPool, service: str, tables: Sequence[Table], config: PlatformConfig,
           settings: Settings) -> Pruner:
    """A service's pruner over its own schema: its processed events and ``tables``."""
    from agentbus.db import schema_name

    return Pruner(pool, schema_name(service, settings), [PROCESSED, *tables], config, settings)
