"""What each ingress replica sees of its channels, kept in a table every replica writes its own rows of
(``channel_states``), so the operator API answers the same whichever replica it runs on.

A replica counts the webhook requests of each configured channel (accepted, refused, failed, the last one and
the last refusal's reason) and knows its long connections (``LinkState``: up or down, the lease's holder,
the last error). Every few seconds it writes that view, one row per channel and replica; the API reads the
rows of a tenant's channels and says which replica saw what and how long ago. Counters run from the
replica's start (a restarted replica has a new name and a new row); rows not written for a day are deleted.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
import psycopg_pool
import structlog
from psycopg_pool import AsyncConnectionPool

from agentbus.services.ingress.api.ports import ChannelStateRow, StoreUnavailable

log = structlog.get_logger("agentbus.ingress.channels")
KEEP_ROWS_S = 86_400.0
MAX_ERROR = 300


@dataclass
class WebhookStats:
    hits: int = 0
    accepted: int = 0  # 2xx: the platform's event is on the broker (or answered, e.g. a URL check)
    refused: int = 0  # 4xx: a bad signature, an old timestamp, a wrong method ...
    failed: int = 0  # 5xx: ingress could not take it (the platform retries)
    last_at: float | None = None  # unix seconds
    last_status: int | None = None
    last_error: str | None = None  # the reason of the last 4xx or 5xx answer
    last_error_at: float | None = None

    def add(self, status: int, reason: str | None, at: float) -> None:
        self.hits += 1
        self.last_at, self.last_status = at, status
        if status < 400:
            self.accepted += 1
            return
        if status < 500:
            self.refused += 1
        else:
            self.failed += 1
        self.last_error, self.last_error_at = f"{status}: {reason or ''}"[:MAX_ERROR], at


@dataclass
class ChannelActivity:
    """This replica's webhook requests per configured channel (the route tells it each answer)."""

    webhooks: dict[str, WebhookStats] = field(default_factory=dict)

    def hit(self, channel: str, status: int, reason: str | None = None, at: float | None = None) -> None:
        self.webhooks.setdefault(channel, WebhookStats()).add(status, reason, time.time() if at is None else at)


def reason_of(body: bytes) -> str | None:
    """The reason of an error answer (``{"error": ...}``), if it has one."""
    try:
        found = json.loads(body)
    except ValueError:
        return None
    return str(found.get("error"))[:MAX_ERROR] if isinstance(found, dict) and found.get("error") else None


class PgChannelStates:
    """The ``channel_states`` table: written by ``ChannelStateWriter``, read by the operator API."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def write(self, replica: str, views: dict[str, dict[str, Any]]) -> None:
        if not views:
            return
        rows = [(channel, replica, json.dumps(view)) for channel, view in views.items()]
        async with self._pool.connection() as conn, conn.transaction():
            cur = conn.cursor()
            await cur.executemany(
                "INSERT INTO channel_states (channel, replica, view, updated_at) VALUES (%s, %s, %s::jsonb, now()) "
                "ON CONFLICT (channel, replica) DO UPDATE SET view = excluded.view, updated_at = now()", rows)
            await conn.execute("DELETE FROM channel_states WHERE updated_at < now() - make_interval(secs => %s)",
                               (KEEP_ROWS_S,))

    async def states(self, channels: Sequence[str]) -> list[ChannelStateRow]:
        try:
            async with self._pool.connection(timeout=5.0) as conn:
                cur = await conn.execute(
                    "SELECT channel, replica, view, updated_at, extract(epoch FROM now() - updated_at)::float8 "
                    "FROM channel_states WHERE channel = ANY(%s) ORDER BY channel, updated_at DESC",
                    (list(channels),))
                return [ChannelStateRow(c, r, dict(v), u, float(a)) for c, r, v, u, a in await cur.fetchall()]
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:  # answered 503: retry later
            raise StoreUnavailable(f"channel states: {type(exc).__name__}") from exc


class ChannelStateWriter:
    """Ingress's background task: this replica's view of every channel it knows, every ``interval_s``."""

    def __init__(self, store: PgChannelStates, replica: str, activity: ChannelActivity,
                 connections: Callable[[], dict[str, Any]], interval_s: float) -> None:
        self._store = store
        self._replica = replica
        self._activity = activity
        self._connections = connections
        self._interval_s = interval_s

    def views(self) -> dict[str, dict[str, Any]]:
        links = self._connections()
        names = set(self._activity.webhooks) | set(links)
        return {c: {"webhook": asdict(self._activity.webhooks[c]) if c in self._activity.webhooks else None,
                    "connection": links.get(c)} for c in sorted(names)}

    async def views_written(self) -> None:
        await self._store.write(self._replica, self.views())

    async def run(self) -> None:
        while True:
            try:
                await self.views_written()
            except Exception as exc:  # the view is late, never wrong: the next round writes it
                log.warning("channel_state_not_written", error=f"{type(exc).__name__}: {exc}"[:300])
            await asyncio.sleep(self._interval_s)
