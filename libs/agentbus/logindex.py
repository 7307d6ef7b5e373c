"""The index of the event log, and on the embedded stack its archive.

Ingress runs the indexer: a consumer (its own group, so replicas share the partitions) that writes one row per
record of every agentbus topic into the ``eventlog`` schema — topic, partition, offset and the envelope's ids,
type, tenant, conversation and time — and commits its offsets only after the rows are in. A redelivered record
is the same row (primary key: topic, partition, offset), so the index is exact, not approximate. ``trace``
looks a message's chain up there and reads only those offsets; ``replay`` counts what the log no longer holds.

With ``log_archive`` (set by ``agentbus up``, whose broker keeps its log in memory) each row also keeps the
record's key, value and headers, and the indexer snapshots the consumer groups' committed offsets. When the
stack starts again on a fresh, empty broker, :func:`restore` produces every archived record back to its topic
and partition in offset order and commits each group's offsets (mapped to the new offsets), so the log, trace
and replay survive a restart and no service processes anything twice (a snapshot a few seconds old only
replays events its handlers already recorded as processed).
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from agentbus.db import columns

if TYPE_CHECKING:
    from aiokafka.structs import ConsumerRecord
    from psycopg_pool import AsyncConnectionPool

    from agentbus.eventlog import Logged
    from agentbus.events import Event
    from agentbus.sealing import Keyring
    from agentbus.settings import Settings

log = structlog.get_logger("agentbus.logindex")

SCHEMA = "eventlog"
MIGRATIONS = Path(__file__).parent / "migrations" / "eventlog"
SERVICE = "logindex"  # the indexer's consumer group: <group prefix>.<topic prefix>.logindex


def indexed_topics(prefix: str) -> list[str]:
    """Every topic the platform writes: the event topics and the configuration's."""
    from agentbus.topics import all_topics, config_topic

    return [*all_topics(prefix), config_topic(prefix)]


def group_ids(settings: Settings) -> list[str]:
    """The consumer groups the platform's services (and the indexer) commit offsets in."""
    from agentbus.settings import SERVICES

    return [f"{settings.consumer_group_prefix}.{settings.topic_prefix}.{s}" for s in (*SERVICES, SERVICE)]


@dataclass(frozen=True)
class Row:
    topic: str
    part: int
    offset: int
    event_id: uuid.UUID | None
    event_type: str | None
    event_version: int | None
    tenant: str | None
    conversation: str | None
    correlation_id: uuid.UUID | None
    occurred_at: datetime | None
    replay_run: str | None
    ts_ms: int
    key: bytes | None
    value: bytes | None
    headers: str | None  # JSON text of [[name, base64], ...]


def _uuid(v: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(v)) if v is not None else None
    except ValueError:
        return None


def row_of(rec: ConsumerRecord, archive: bool) -> Row:
    """The index row of one record. The envelope is read as plain JSON (no model validation: the indexer must
    keep up with the log, and a record that is not an agentbus event is still a record of the archive)."""
    envelope: dict[str, Any] = {}
    try:
        obj = orjson.loads(rec.value) if rec.value is not None else None
        if isinstance(obj, dict):
            envelope = obj
    except orjson.JSONDecodeError:
        pass
    when = None
    if isinstance(envelope.get("occurred_at"), str):
        try:
            when = datetime.fromisoformat(envelope["occurred_at"])
        except ValueError:
            when = None
    replay = envelope.get("replay")
    version = envelope.get("version")
    headers = None
    if archive:
        headers = orjson.dumps([[k, base64.b64encode(v or b"").decode()] for k, v in rec.headers or ()]).decode()
    return Row(
        rec.topic, rec.partition, rec.offset, _uuid(envelope.get("id")),
        envelope.get("type") if isinstance(envelope.get("type"), str) else None,
        version if isinstance(version, int) else None,
        envelope.get("tenant") if isinstance(envelope.get("tenant"), str) else None,
        envelope.get("conversation") if isinstance(envelope.get("conversation"), str) else None,
        _uuid(envelope.get("correlation_id")), when,
        str(replay["run"]) if isinstance(replay, dict) and replay.get("run") is not None else None,
        int(rec.timestamp), rec.key if archive else None, rec.value if archive else None, headers,
    )


@dataclass(frozen=True)
class Located:
    """Where one event of a chain is on the log (and its bytes, when the archive holds them)."""

    topic: str
    part: int
    offset: int
    value: bytes | None
    headers: list[tuple[str, bytes]] | None


def _headers(raw: Any) -> list[tuple[str, bytes]] | None:
    if raw is None:
        return None
    items = orjson.loads(raw) if isinstance(raw, (str, bytes)) else raw
    return [(str(k), base64.b64decode(v)) for k, v in items]


class LogIndex:
    """The ``eventlog`` schema: rows written by the indexer, lookups for trace and replay, and the archive."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def add(self, rows: Sequence[Row]) -> int:
        """Insert rows (a row already there is left as it is); returns how many were new."""
        if not rows:
            return 0
        cols = columns([(r.topic, r.part, r.offset, r.event_id, r.event_type, r.event_version, r.tenant,
                         r.conversation, r.correlation_id, r.occurred_at, r.replay_run, r.ts_ms, r.key, r.value,
                         r.headers) for r in rows], 15)
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                'INSERT INTO records (topic, part, "offset", event_id, event_type, event_version, tenant, '
                "conversation, correlation_id, occurred_at, replay_run, ts_ms, key, value, headers) "
                "SELECT * FROM unnest(%s::text[], %s::int[], %s::bigint[], %s::uuid[], %s::text[], %s::int[], "
                "%s::text[], %s::text[], %s::uuid[], %s::timestamptz[], %s::text[], %s::bigint[], %s::bytea[], "
                "%s::bytea[], %s::jsonb[]) ON CONFLICT DO NOTHING", cols)
            return cur.rowcount

    async def chain(self, wanted: str, tenant: str | None = None) -> tuple[str, list[Located]] | None:
        """The correlation id and the locations of every event of the chain that ``wanted`` (an event id or a
        correlation id) is part of, in the events' time order; None when the index has no such event."""
        try:
            wanted_id = uuid.UUID(wanted)
        except ValueError:
            return None
        async with self._pool.connection() as conn:
            row = await (await conn.execute(
                "SELECT correlation_id FROM records WHERE correlation_id = %(id)s AND (%(t)s::text IS NULL OR "
                "tenant = %(t)s) UNION ALL SELECT correlation_id FROM records WHERE event_id = %(id)s AND "
                "(%(t)s::text IS NULL OR tenant = %(t)s) LIMIT 1", {"id": wanted_id, "t": tenant})).fetchone()
            if row is None or row[0] is None:
                return None
            rows = await (await conn.execute(
                'SELECT topic, part, "offset", value, headers FROM records WHERE correlation_id = %s '
                'AND (%s::text IS NULL OR tenant = %s) ORDER BY occurred_at, topic, part, "offset"',
                (row[0], tenant, tenant))).fetchall()
        return str(row[0]), [Located(t, p, o, bytes(v) if v is not None else None, _headers(h))
                             for t, p, o, v, h in rows]

    async def select(self, topics: Sequence[str], tenant: str, since: datetime | None, until: datetime | None,
                     conversation: str | None, correlation: str | None, limit: int) -> list[Located]:
        """Live (not replayed) events of ``topics`` of a tenant, oldest first, at most ``limit``: a superset of a
        replay's selection by conversation (its chat part matches too), which the caller filters exactly."""
        try:
            corr = uuid.UUID(correlation) if correlation else None
        except ValueError:
            return []
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(
                'SELECT topic, part, "offset", value, headers FROM records WHERE topic = ANY(%(topics)s) '
                "AND tenant = %(tenant)s AND replay_run IS NULL "
                "AND (%(since)s::timestamptz IS NULL OR occurred_at >= %(since)s) "
                "AND (%(until)s::timestamptz IS NULL OR occurred_at <= %(until)s) "
                "AND (%(corr)s::uuid IS NULL OR correlation_id = %(corr)s) "
                "AND (%(conv)s::text IS NULL OR conversation = %(conv)s OR conversation LIKE %(like)s) "
                'ORDER BY occurred_at, part, "offset" LIMIT %(limit)s',
                {"topics": list(topics), "tenant": tenant, "since": since, "until": until, "corr": corr,
                 "conv": conversation, "like": f"%/{conversation}" if conversation else None,
                 "limit": limit})).fetchall()
        return [Located(t, p, o, bytes(v) if v is not None else None, _headers(h)) for t, p, o, v, h in rows]

    async def next_offsets(self, partitions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The offset after the last one indexed, per (topic, partition) the index holds anything of."""
        if not partitions:
            return {}
        topics, parts = columns(partitions, 2)
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(
                'SELECT w.topic, w.part, (SELECT max(r."offset") FROM records r WHERE r.topic = w.topic '
                "AND r.part = w.part) FROM unnest(%s::text[], %s::int[]) AS w(topic, part)",
                (topics, parts))).fetchall()
        return {(str(t), int(p)): int(m) + 1 for t, p, m in rows if m is not None}

    async def has_archive(self) -> bool:
        """Whether any record's bytes are archived (what `agentbus up` asks on every start: no count)."""
        async with self._pool.connection() as conn:
            row = await (await conn.execute("SELECT EXISTS (SELECT 1 FROM records WHERE value IS NOT NULL)")).fetchone()
        return bool(row and row[0])

    async def archived(self) -> int:
        async with self._pool.connection() as conn:
            row = await (await conn.execute("SELECT count(*) FROM records WHERE value IS NOT NULL")).fetchone()
        return int(row[0]) if row else 0

    async def save_group_offsets(self, group: str, offsets: dict[tuple[str, int], int]) -> None:
        if not offsets:
            return
        topics, parts, committed = columns([(t, p, o) for (t, p), o in offsets.items()], 3)
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO group_offsets (group_id, topic, part, committed) "
                "SELECT %s, * FROM unnest(%s::text[], %s::int[], %s::bigint[]) ON CONFLICT (group_id, topic, part) "
                "DO UPDATE SET committed = EXCLUDED.committed, taken_at = now()", (group, topics, parts, committed))


async def _events_at(settings: Settings, located: Sequence[Located],
                     keyring: Keyring | None) -> tuple[list[Logged], int]:
    """The events at ``located``: archived records as they are, the others read at their offsets; and how many of
    those the log no longer holds."""
    from agentbus.eventlog import logged_of, read_at

    out = [lg for loc in located if loc.value is not None
           and (lg := await logged_of(loc.topic, loc.part, loc.offset, loc.value, loc.headers, keyring)) is not None]
    wanted = [(loc.topic, loc.part, loc.offset) for loc in located if loc.value is None]
    held = await read_at(settings, wanted, keyring=keyring)
    return out + held, len(wanted) - len(held)


def _add_new(out: list[Logged], more: Sequence[Logged]) -> None:
    seen = {lg.event.id for lg in out}
    out += [lg for lg in more if lg.event.id not in seen]


async def indexed_chain(settings: Settings, index: LogIndex, wanted: str,
                        tenant: str | None, keyring: Keyring | None = None) -> list[Logged] | None:
    """The chain of ``wanted`` through the log index: archived records as they are, others read at their offsets,
    and what the indexer has not reached yet read from the log past its last indexed offset (a chain's events
    share their conversation's key, so they sit on the same partition of every topic: the tail is short).
    None when the index does not know the id."""
    from agentbus.eventlog import Filter
    from agentbus.topics import all_topics

    topics = all_topics(settings.topic_prefix)
    starts = await tail_starts(settings, index, topics)  # before the lookup: what is indexed after it is in the tail
    found = await index.chain(wanted, tenant)
    if found is None:
        return None
    correlation, located = found
    parts = {loc.part for loc in located}
    (out, _), tail = await asyncio.gather(
        _events_at(settings, located, keyring),
        read_tail(settings, topics, Filter(correlation=correlation, tenant=tenant),
                  {tp: at for tp, at in starts.items() if tp.partition in parts}, keyring))
    _add_new(out, tail)
    out.sort(key=lambda lg: lg.event.occurred_at)
    return out


_TAIL_WAIT_MS = 5  # how long the broker may hold the tail's fetch for records that are not there


async def tail_starts(settings: Settings, index: LogIndex, topics: Sequence[str]) -> dict[Any, int]:
    """Per partition of ``topics``, the offset after the last one the index holds (0 where it holds none): where
    the indexer's lag begins. Taken before the index is asked, so that an event indexed in between is read from
    the log rather than missed by both."""
    from agentbus.eventlog import partitions_of

    tps = await partitions_of(settings, topics)
    nexts = await index.next_offsets([(tp.topic, tp.partition) for tp in tps])
    return {tp: nexts.get((tp.topic, tp.partition), 0) for tp in tps}


async def read_tail(settings: Settings, topics: Sequence[str], keep: Any, starts: dict[Any, int],
                    keyring: Keyring | None = None) -> list[Logged]:
    """What ``keep`` accepts among the records of ``topics`` from ``starts`` (``tail_starts``) to the end. Every
    partition is read to its end as the first fetch answers it, not as ListOffsets does (Tansu answers that with
    the base offset of the last batch plus one, short of the end when that batch holds several records, and an
    event the indexer has not reached would be missed); the fetch waits only briefly, so a caught-up index costs
    one short fetch."""
    from agentbus.eventlog import read

    if not starts:
        return []
    return await read(settings, topics, keep, starts, only_start=True, keyring=keyring, fetch_max_wait_ms=_TAIL_WAIT_MS)


async def indexed_selection(settings: Settings, index: LogIndex, topics: Sequence[str], keep: Any, limit: int,
                            keyring: Keyring | None = None) -> tuple[list[Event], bool, int]:
    """A replay's live events of ``topics`` that ``keep`` (an ``eventlog.Filter``) accepts, through the index:
    oldest first, at most ``limit``; whether more matched; and how many matched that the log no longer holds
    (older than its retention, and not in the archive)."""
    room = limit * 2 + 10  # the index's conversation match is a superset; the exact filter runs below
    starts = await tail_starts(settings, index, topics)  # before the selection: see indexed_chain
    located = await index.select(topics, keep.tenant, keep.since, keep.until, keep.conversation, keep.correlation,
                                 room)
    (logged, expired), tail = await asyncio.gather(_events_at(settings, located, keyring),
                                                   read_tail(settings, topics, keep, starts, keyring))
    _add_new(logged, tail)
    matched = sorted((lg.event for lg in logged if keep(lg.event) and lg.event.replay is None),
                     key=lambda e: e.occurred_at)
    return matched[:limit], len(matched) > limit or len(located) >= room, expired


@asynccontextmanager
async def tool_log_index(settings: Settings, timeout_s: float = 3.0) -> AsyncIterator[LogIndex | None]:
    """The index for a command-line tool, closed after use; None when the index is off or the database does not
    answer within ``timeout_s`` (the tool then reads the log itself instead of waiting for a pool that cannot
    connect)."""
    import psycopg

    reached = None
    if settings.log_index:
        try:
            conn = await psycopg.AsyncConnection.connect(settings.database_url,
                                                         connect_timeout=max(1, int(timeout_s)))
            await conn.close()
            reached = await asyncio.wait_for(open_log_index(settings, max_size=1), timeout_s * 5)
        except (psycopg.Error, OSError, TimeoutError):
            reached = None
    if reached is None:
        yield None
        return
    index, pool = reached
    try:
        yield index
    finally:
        await pool.close()


async def open_log_index(settings: Settings, max_size: int = 4) -> tuple[LogIndex, AsyncConnectionPool]:
    """The index on its own schema, migrated (replicas race safely: advisory lock)."""
    from agentbus.db import migrate, open_pool, schema_name

    schema = schema_name(SCHEMA, settings)
    pool = await open_pool(settings, schema, max_size=max(max_size, settings.db_pool_min), synchronous_commit=False)
    await migrate(pool, schema, MIGRATIONS)
    return LogIndex(pool), pool


class Indexer:
    """Follows every agentbus topic in its own consumer group and writes the index (and the archive)."""

    def __init__(self, settings: Settings, index: LogIndex) -> None:
        self._s, self._index = settings, index
        self._archive = settings.log_archive
        self.indexed = 0
        self.caught_up_at: float | None = None
        self._seen: set[tuple[str, int]] = set()
        self._groups: dict[str, Any] = {}  # group id -> the consumer reading that group's committed offsets

    async def run(self) -> None:
        """Index until cancelled. A failure (broker or database away) is logged and the indexer starts over from
        its committed offsets a little later: it never stops ingress, and it loses nothing (rows are idempotent)."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried: the index catches up from its offsets
                log.warning("log_index_failed", error=f"{type(exc).__name__}: {exc}"[:300])
                await asyncio.sleep(2.0)

    async def _follow(self) -> None:
        from aiokafka import AIOKafkaConsumer

        from agentbus import metrics
        from agentbus.bus.kafka import client_options

        group = f"{self._s.consumer_group_prefix}.{self._s.topic_prefix}.{SERVICE}"
        consumer = AIOKafkaConsumer(*indexed_topics(self._s.topic_prefix), **client_options(self._s),
                                    group_id=group, enable_auto_commit=False, auto_offset_reset="earliest",
                                    max_partition_fetch_bytes=8 * 1024 * 1024,
                                    session_timeout_ms=self._s.session_timeout_ms,
                                    heartbeat_interval_ms=self._s.heartbeat_interval_ms)
        await consumer.start()
        last_snapshot = 0.0
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=5000)
                records = [r for rs in batch.values() for r in rs]
                if records:
                    rows = [row_of(r, self._archive) for r in records]
                    self._seen.update((r.topic, r.part) for r in rows)
                    await self._index.add(rows)
                    await consumer.commit()
                    self.indexed += len(rows)
                    metrics.LOG_INDEXED.inc(len(rows))
                else:
                    self.caught_up_at = time.monotonic()
                if self._archive and time.monotonic() - last_snapshot >= self._s.log_snapshot_s:
                    await self.snapshot_groups()
                    last_snapshot = time.monotonic()
        finally:
            try:
                if self._archive:
                    await self.snapshot_groups()
            except Exception as exc:  # noqa: BLE001 - stopping: the previous snapshot stands
                log.warning("group_snapshot_failed", error=f"{type(exc).__name__}: {exc}"[:200])
            await self._close_groups()
            await consumer.stop()

    async def snapshot_groups(self) -> None:
        """Every service group's committed offsets (of the partitions the index has seen) into ``group_offsets``.
        Read with ``committed()`` per group, which every Kafka-protocol broker answers (the embedded one does not
        answer the admin API's offset listing)."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from agentbus.bus.kafka import client_options

        if not self._seen:
            return
        tps = [TopicPartition(t, p) for t, p in sorted(self._seen)]
        for group in group_ids(self._s):
            c = self._groups.get(group)
            if c is None:
                c = AIOKafkaConsumer(**client_options(self._s), group_id=group, enable_auto_commit=False)
                await c.start()
                self._groups[group] = c
            offsets = {}
            for tp in tps:
                committed = await c.committed(tp)
                if committed is not None and committed >= 0:
                    offsets[(tp.topic, tp.partition)] = committed
            await self._index.save_group_offsets(group, offsets)

    async def _close_groups(self) -> None:
        for c in self._groups.values():
            await c.stop()
        self._groups.clear()


async def restore(settings: Settings, batch: int = 2000) -> int:
    """Produce the archive back into a broker whose topics are empty (the embedded stack after a restart),
    in offset order per partition, then commit every group's snapshotted offsets mapped to the new offsets.
    Returns the number of records restored; 0 when there is no archive or the broker already holds records."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    from agentbus.bus.kafka import client_options, ensure_config_topic, ensure_topics
    from agentbus.topics import all_topics

    index, pool = await open_log_index(settings)
    try:
        if not await index.has_archive():
            return 0
        # the topics as the services create them (the same partitions), before any service starts
        await ensure_topics(settings, all_topics(settings.topic_prefix))
        await ensure_config_topic(settings)
        async with pool.connection() as conn:
            tps = [(str(t), int(p)) for t, p in await (await conn.execute(
                "SELECT DISTINCT topic, part FROM records WHERE value IS NOT NULL ORDER BY 1, 2")).fetchall()]
        probe = AIOKafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False)
        await probe.start()
        try:
            existing = await probe.topics()
            present = [TopicPartition(t, p) for t, p in tps if t in existing]
            ends = await probe.end_offsets(present) if present else {}
        finally:
            await probe.stop()
        if any(v > 0 for v in ends.values()):
            log.info("log_restore_skipped", reason="the broker already holds records")
            return 0
        t0 = time.monotonic()
        # in order per partition: the producer has one batch in flight per partition (no idempotence: the
        # embedded broker refuses InitProducerId)
        producer = AIOKafkaProducer(**client_options(settings), acks="all", linger_ms=5,
                                    max_request_size=8 * 1024 * 1024)
        await producer.start()
        restored = 0
        moved: dict[tuple[str, int], dict[int, int]] = {}  # (topic, part) -> {old offset: new offset}
        ends_new: dict[tuple[str, int], tuple[int, int]] = {}  # (topic, part) -> (old end, new end)
        try:
            for topic, part in tps:
                after = -1
                mapping: dict[int, int] = {}
                while True:
                    async with pool.connection() as conn:
                        rows = await (await conn.execute(
                            'SELECT "offset", key, value, headers, ts_ms FROM records WHERE topic = %s AND part = %s '
                            'AND "offset" > %s AND value IS NOT NULL ORDER BY "offset" LIMIT %s',
                            (topic, part, after, batch))).fetchall()
                    if not rows:
                        break
                    futures = [await producer.send(topic, value=bytes(v), key=bytes(k) if k is not None else None,
                                                   partition=part, timestamp_ms=int(ts), headers=_headers(h))
                               for _, k, v, h, ts in rows]
                    for (old, *_), meta in zip(rows, await asyncio.gather(*futures), strict=True):
                        mapping[int(old)] = meta.offset
                    restored += len(rows)
                    after = int(rows[-1][0])
                moved[(topic, part)] = mapping
                if mapping:
                    ends_new[(topic, part)] = (max(mapping) + 1, max(mapping.values()) + 1)
        finally:
            await producer.stop()
        await _renumber(pool, moved)
        await _commit_groups(settings, pool, moved, ends_new)
        log.info("log_restored", records=restored, partitions=len(tps), seconds=round(time.monotonic() - t0, 1))
        return restored
    finally:
        await pool.close()


async def _renumber(pool: AsyncConnectionPool, moved: dict[tuple[str, int], dict[int, int]]) -> None:
    """Rows whose record got another offset in the new broker take it: first as a negative number, then as
    itself, so two rows swapping offsets never meet on the key."""
    changes = [(t, p, old, new) for (t, p), m in moved.items() for old, new in m.items() if old != new]
    if not changes:
        return
    topics, parts, olds, news = columns(changes, 4)
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            'UPDATE records r SET "offset" = -1 - c.new FROM unnest(%s::text[], %s::int[], %s::bigint[], '
            '%s::bigint[]) AS c(topic, part, old, new) WHERE r.topic = c.topic AND r.part = c.part '
            'AND r."offset" = c.old', (topics, parts, olds, news))
        await conn.execute('UPDATE records SET "offset" = -1 - "offset" WHERE "offset" < 0')
    log.warning("log_restore_renumbered", records=len(changes))


async def _commit_groups(settings: Settings, pool: AsyncConnectionPool, moved: dict[tuple[str, int], dict[int, int]],
                         ends: dict[tuple[str, int], tuple[int, int]]) -> None:
    """Each group's snapshotted committed offset, mapped: the next record it had not read is the same record
    in the new broker (or the new end, when it had read everything)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.structs import OffsetAndMetadata

    from agentbus.bus.kafka import client_options

    async with pool.connection() as conn:
        rows = await (await conn.execute("SELECT group_id, topic, part, committed FROM group_offsets")).fetchall()
    by_group: dict[str, dict[Any, Any]] = {}
    for group, topic, part, committed in rows:
        mapping = moved.get((topic, part))
        if not mapping:
            continue
        old_end, new_end = ends[(topic, part)]
        if committed >= old_end:
            new = new_end
        else:
            later = [o for o in mapping if o >= committed]
            new = mapping[min(later)] if later else new_end
        by_group.setdefault(group, {})[TopicPartition(topic, part)] = OffsetAndMetadata(new, "")
    index = LogIndex(pool)
    for group, offsets in by_group.items():
        c = AIOKafkaConsumer(**client_options(settings), group_id=group, enable_auto_commit=False)
        await c.start()
        try:
            c.assign(list(offsets))
            await c.commit(offsets)
        finally:
            await c.stop()
        # the snapshot now says what the new broker holds (a later snapshot overwrites it in any case)
        await index.save_group_offsets(group, {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()})
