"""PostgreSQL: one schema per service, migrations run on start, and the processed-events outbox.

Every consumer records the id of each event it has processed, together with the events it produced, in
the same transaction as the event's effects. A redelivered event then changes nothing: its recorded
outputs are published again (same ids), and downstream consumers ignore what they have already seen.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import orjson
import psycopg
import structlog
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb, set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from agentbus.batching import Coalescer, Span
from agentbus.events import Event, parse_event
from agentbus.sealing import Keyring
from agentbus.sealing.wire import open_event, seal_event
from agentbus.settings import Settings
from agentbus.telemetry import exporting

log = structlog.get_logger("agentbus.db")

T = TypeVar("T")
R = TypeVar("R")

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

KERNEL_SQL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS processed_events (
    event_id uuid NOT NULL,
    replay_run text NOT NULL DEFAULT '',
    event_type text NOT NULL,
    outputs jsonb NOT NULL DEFAULT '[]'::jsonb,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, replay_run)
);
-- what retention prunes past the horizon (libs/agentbus/retention.py)
CREATE INDEX IF NOT EXISTS processed_events_processed_at ON processed_events (processed_at);
"""


def schema_name(service: str, settings: Settings) -> str:
    """The service's schema; ``AGENTBUS_DB_SCHEMA_SUFFIX`` isolates test runs sharing one database."""
    import os

    name = service + os.environ.get("AGENTBUS_DB_SCHEMA_SUFFIX", "")
    if not _SCHEMA_RE.match(name):
        raise ValueError(f"invalid schema name {name!r}")
    return name


async def open_pool(
    settings: Settings, schema: str, max_size: int | None = None, synchronous_commit: bool = True,
    open_timeout_s: float = 60.0,
) -> AsyncConnectionPool:
    """A pool whose connections use the service's schema. Connections are not pinged on every checkout
    (a round trip per event); a broken one fails its statement, which the consumer retries as transient,
    and the pool replaces it."""
    if not _SCHEMA_RE.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    options = f"-c search_path={schema}" + ("" if synchronous_commit else " -c synchronous_commit=off")
    pool = AsyncConnectionPool(
        settings.database_url,
        min_size=settings.db_pool_min,
        max_size=max_size or settings.db_pool_max,
        kwargs={"options": options, "autocommit": True},
        open=False,
        timeout=30,
        reconnect_timeout=300,
    )
    try:
        await pool.open(wait=True, timeout=open_timeout_s)
    except BaseException:
        await pool.close()
        raise
    return pool


async def migrate(pool: AsyncConnectionPool, schema: str, migrations: Path) -> list[str]:
    """Apply ``migrations/*.sql`` in name order, once each, under an advisory lock (replicas race here)."""
    applied: list[str] = []
    async with pool.connection() as conn:
        await conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"agentbus.migrate.{schema}",))
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            async with conn.transaction():
                await conn.execute(KERNEL_SQL)
            done = {r[0] for r in await (await conn.execute("SELECT version FROM schema_migrations")).fetchall()}
            for path in sorted(migrations.glob("*.sql")):
                if path.stem in done:
                    continue
                async with conn.transaction():
                    await conn.execute(path.read_text(encoding="utf-8"))
                    await conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (path.stem,))
                applied.append(path.stem)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (f"agentbus.migrate.{schema}",))
    if applied:
        log.info("migrations_applied", schema=schema, versions=applied)
    return applied


# JSON parameters and columns through orjson (psycopg's default is the stdlib encoder)
set_json_dumps(orjson.dumps)
set_json_loads(orjson.loads)


def _raw(doc: bytes) -> bytes:
    return doc


def raw_jsonb(doc: bytes) -> Jsonb:
    """A jsonb parameter from bytes that already are JSON (an event's own serialisation): not re-encoded."""
    return Jsonb(doc, dumps=_raw)


def outputs_json(outputs: Sequence[Event]) -> Jsonb:
    """The outputs as one jsonb array, spliced from each event's serialisation."""
    return raw_jsonb(b"[" + b",".join(o.to_bytes() for o in outputs) + b"]")


async def sealed_outputs_json(outputs: Sequence[Event], keyring: Keyring | None) -> Jsonb:
    """The outputs as ``outputs_json`` makes them, with each person's text sealed as it is on the wire."""
    if keyring is None:
        return outputs_json(outputs)
    return raw_jsonb(b"[" + b",".join([await seal_event(keyring, o) for o in outputs]) + b"]")


def replay_run(event: Event) -> str:
    return event.replay.run if event.replay is not None else ""


async def processed_outputs(conn: AsyncConnection, event: Event, keyring: Keyring | None = None) -> list[Event] | None:
    """The events recorded for an already-processed input, or None if it was never processed."""
    cur = await conn.execute(
        "SELECT outputs FROM processed_events WHERE event_id = %s AND replay_run = %s", (event.id, replay_run(event))
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return await opened_outputs(row[0], keyring)


async def opened_outputs(outputs: Sequence[object], keyring: Keyring | None) -> list[Event]:
    """Recorded outputs (jsonb) as events, their people's text opened with ``keyring``."""
    if keyring is None:
        return [parse_event(o) for o in outputs]  # type: ignore[arg-type]  # jsonb objects: refused if not
    return [await open_event(keyring, o) for o in outputs]  # type: ignore[arg-type]


async def record_batch(
    conn: AsyncConnection,
    records: Sequence[tuple[Event, Sequence[Event]]],
    effects: tuple[str, Sequence[object]] | None = None,
    keyring: Keyring | None = None,
) -> list[list[Event]]:
    """Write ``effects`` and the events' processed records in ONE statement (data-modifying CTEs run once,
    atomically), so each event's effects are written with its record or not at all. ``effects`` is one
    INSERT/UPDATE over ``unnest`` of its parameter arrays (every event's effects at once).
    Returns each event's outputs: those given, or, where another worker recorded the event first, its."""
    sql = (
        (f"WITH e AS ({effects[0]}) " if effects else "")
        + "INSERT INTO processed_events (event_id, replay_run, event_type, outputs) "
        "SELECT * FROM unnest(%b::uuid[], %b::text[], %b::text[], %b::jsonb[]) "
        "ON CONFLICT (event_id, replay_run) DO NOTHING RETURNING event_id, replay_run"
    )
    params = [
        *(effects[1] if effects else ()),
        [e.id for e, _ in records],
        [replay_run(e) for e, _ in records],
        [e.TYPE for e, _ in records],
        [await sealed_outputs_json(outs, keyring) for _, outs in records],
    ]
    cur = await conn.execute(sql, params)
    recorded = {(r[0], r[1]) for r in await cur.fetchall()}
    results: list[list[Event]] = []
    for event, outputs in records:
        if (event.id, replay_run(event)) in recorded:
            results.append(list(outputs))
            continue
        previous = await processed_outputs(conn, event, keyring)  # recorded before: its first outputs stand
        if previous is None:  # pragma: no cover - the conflicting row cannot vanish
            raise RuntimeError("processed record conflict without a record")
        results.append(previous)
    return results


def item_may_be_at_fault(exc: Exception) -> bool:
    """Whether a statement written for many events failed because of what it carried (so each event is
    worth trying alone), not because the database or the pool is unreachable (each would fail the same)."""
    return not isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout))


def coalesced(
    many: Callable[[list[T]], Awaitable[Sequence[R | Exception]]], max_batch: int = 256
) -> Coalescer[T, R]:
    """A ``Coalescer`` of statements: a failed batch is tried item by item only when an item may be at fault.

    When traces are exported, each batch is a database span named for what it does (``Ledger._lookup_many``
    → ``postgresql ledger.lookup_many``), in the trace of the first event it serves and linked to the
    others'. Without an exporter no span is made: nothing would read it (unlike the spans whose ids go into
    log lines and event headers), and capturing every caller's context cost about 3 us per item."""
    if not exporting():
        return Coalescer(many, max_batch, alone_if=item_may_be_at_fault)
    owner, _, what = many.__qualname__.rpartition(".")
    name = f"postgresql {owner.lower()}.{what.lstrip('_')}" if owner else f"postgresql {what.lstrip('_')}"
    span = Span(name, {"db.system.name": "postgresql", "db.operation.name": what.lstrip("_")})
    return Coalescer(many, max_batch, alone_if=item_may_be_at_fault, span=span)


def columns(rows: Sequence[Sequence[object]], width: int) -> list[list[object]]:
    """Rows as ``width`` column lists, the parameters of an ``unnest`` statement."""
    cols: list[list[object]] = [[] for _ in range(width)]
    for row in rows:
        for col, value in zip(cols, row, strict=True):
            col.append(value)
    return cols


async def record_processed(
    conn: AsyncConnection, event: Event, outputs: Sequence[Event] = ()
) -> bool:
    """Record ``event`` as processed with its outputs; False if another worker recorded it first."""
    payload = outputs_json(outputs)
    cur = await conn.execute(
        "INSERT INTO processed_events (event_id, replay_run, event_type, outputs) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (event_id, replay_run) DO NOTHING",
        (event.id, replay_run(event), event.TYPE, payload),
    )
    return cur.rowcount == 1


async def service_database(
    settings: Settings, service: str, migrations: Path, synchronous_commit: bool = True
) -> tuple[AsyncConnectionPool, Callable[[], Awaitable[tuple[bool, str]]]]:
    """A service's pool on its own schema, migrated, and its readiness check."""
    schema = schema_name(service, settings)
    pool = await open_pool(settings, schema, synchronous_commit=synchronous_commit)
    await migrate(pool, schema, migrations)

    async def ready() -> tuple[bool, str]:
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")
        return True, "connected"

    return pool, ready
