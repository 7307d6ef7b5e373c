"""Reading the event log itself: the topics are the source of truth for tail, trace and replay.

Reads with no consumer group (nothing is committed, nothing is disturbed). Time windows are applied to the
event's own ``occurred_at``, because some brokers have no timestamp index to look offsets up by time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from agentbus.bus.kafka import client_options
from agentbus.events import Event
from agentbus.ids import ConversationKey
from agentbus.sealing import Keyring
from agentbus.sealing.wire import open_event
from agentbus.settings import Settings


@dataclass(frozen=True)
class Logged:
    event: Event
    topic: str
    partition: int
    offset: int
    headers: dict[str, str]

    @property
    def traceparent(self) -> str | None:
        return self.headers.get("traceparent")

    @property
    def trace_id(self) -> str | None:
        tp = self.traceparent
        parts = tp.split("-") if tp else []
        return parts[1] if len(parts) == 4 else None


@dataclass(frozen=True)
class Filter:
    types: tuple[str, ...] = ()
    tenant: str | None = None
    conversation: str | None = None
    correlation: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    include_replays: bool = True

    def __call__(self, e: Event) -> bool:
        if self.types and e.TYPE not in self.types:
            return False
        if self.tenant and e.tenant != self.tenant:
            return False
        if self.conversation and self.conversation not in (e.conversation, _chat_of(e.conversation)):
            return False
        if self.correlation and str(e.correlation_id) != self.correlation:
            return False
        if self.since and e.occurred_at < self.since:
            return False
        if self.until and e.occurred_at > self.until:
            return False
        return self.include_replays or e.replay is None


def _chat_of(conversation: str) -> str | None:
    """The chat part of a conversation key (a filter may name just the chat)."""
    try:
        return ConversationKey.parse(conversation).chat
    except ValueError:
        return None


async def _decode(rec: ConsumerRecord, keyring: Keyring | None) -> Logged | None:
    """The record's event, a person's text opened with ``keyring`` (``[sealed]`` without one, ``[forgotten]``
    once their key is deleted); None for a record that is not an event."""
    try:
        event = await open_event(keyring, rec.value)
    except ValueError:
        return None
    headers = {}
    for k, v in rec.headers or ():
        try:
            headers[k] = v.decode()
        except UnicodeDecodeError:
            continue
    return Logged(event, rec.topic, rec.partition, rec.offset, headers)


async def partitions_of(settings: Settings, topics: Sequence[str]) -> list[TopicPartition]:
    """Every partition of those of ``topics`` that exist, as the broker describes them (a consumer's own
    metadata holds only the topics it was given, which Kafka's brokers answer literally)."""
    from agentbus.bus.kafka import admin_client

    admin = await admin_client(settings)
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in dict.fromkeys(topics) if t in existing]
        described = await admin.describe_topics(wanted) if wanted else []
    finally:
        await admin.close()
    by_topic = {d["topic"]: sorted(p["partition"] for p in d["partitions"]) for d in described}
    return [TopicPartition(t, p) for t in wanted for p in by_topic.get(t, ())]


async def _consumer(settings: Settings, topics: Sequence[str], only: Sequence[TopicPartition] | None = None,
                    fetch_max_wait_ms: int = 500) -> tuple[AIOKafkaConsumer, list[TopicPartition]]:
    """A consumer with no group assigned every partition of ``topics`` (or only the existing ones of ``only``)."""
    tps = [tp for tp in await partitions_of(settings, topics) if only is None or tp in only]
    c = AIOKafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest", max_partition_fetch_bytes=8 * 1024 * 1024,
                         fetch_max_wait_ms=fetch_max_wait_ms, retry_backoff_ms=min(100, max(fetch_max_wait_ms, 10)))
    await c.start()
    # one turn of the loop: aiokafka's group-less consumer starts a task at the end of start() that, cancelled
    # by a stop() before it first ran, makes that stop() raise CancelledError (a read of no partitions does that)
    await asyncio.sleep(0)
    c.assign(tps)
    return c, tps


async def end_offsets(settings: Settings, topics: Sequence[str]) -> dict[TopicPartition, int]:
    c, tps = await _consumer(settings, topics)
    try:
        return await c.end_offsets(tps) if tps else {}
    finally:
        await c.stop()


async def read_records(
    settings: Settings,
    topics: Sequence[str],
    start: dict[TopicPartition, int] | None = None,
    timeout_s: float = 60.0,
    only_start: bool = False,
    fetch_max_wait_ms: int = 500,
) -> list[ConsumerRecord]:
    """Every record of ``topics`` from the beginning (or ``start``) up to the end as of now; with
    ``only_start``, of the partitions in ``start`` only.

    The end of a partition is the high watermark of the first fetch response (and at least what ListOffsets
    says): Tansu answers ListOffsets(latest) with the base offset of the last batch plus one, which is short of
    the end whenever that batch holds more than one record."""
    c, tps = await _consumer(settings, topics, list(start or ()) if only_start else None, fetch_max_wait_ms)
    out: list[ConsumerRecord] = []
    try:
        if not tps:
            return out
        # the starts are set before anything awaits: aiokafka's fetcher, finding a partition without a position,
        # resets it and sleeps its fetcher_timeout (0.2 s) before the first fetch
        for tp in tps:
            if start and tp in start:
                c.seek(tp, start[tp])
        for tp in tps:
            if not (start and tp in start):
                await c.seek_to_beginning(tp)
        listed = await c.end_offsets(tps)
        ends: dict[TopicPartition, int] = {}
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            for tp in tps:
                hw = c.highwater(tp)
                if tp not in ends and hw is not None:
                    ends[tp] = max(hw, listed[tp])
            if len(ends) == len(tps) and all([await c.position(tp) >= ends[tp] for tp in tps]):
                break
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"could not read {', '.join(topics)} to the end within {timeout_s:.0f}s")
            batch = await c.getmany(timeout_ms=max(fetch_max_wait_ms, 10), max_records=2000)
            for tp, recs in batch.items():
                end = ends.get(tp, max(c.highwater(tp) or 0, listed[tp]))
                out += [r for r in recs if r.offset < end]
    finally:
        await c.stop()
    return out


async def logged_of(topic: str, partition: int, offset: int, value: bytes,
                    headers: Sequence[tuple[str, bytes]] | None, keyring: Keyring | None = None) -> Logged | None:
    """A record kept elsewhere (the log's archive) as it would have been read from its topic."""
    return await _decode(ConsumerRecord(topic, partition, offset, 0, 0, None, value, None, 0, len(value),
                                        list(headers or ())), keyring)


async def read_at(settings: Settings, locations: Sequence[tuple[str, int, int]],
                  timeout_s: float = 10.0, keyring: Keyring | None = None) -> list[Logged]:
    """The events at these (topic, partition, offset) locations (from the log index), oldest first: each
    partition is read from its lowest wanted offset to its highest, so a chain costs a few short fetches
    instead of a scan of every topic. A location the log no longer holds (retention) is left out."""
    if not locations:
        return []
    wanted: dict[TopicPartition, set[int]] = {}
    for topic, part, offset in locations:
        wanted.setdefault(TopicPartition(topic, part), set()).add(offset)
    c = AIOKafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest", max_partition_fetch_bytes=8 * 1024 * 1024)
    await c.start()
    out: list[Logged] = []
    try:
        tps = list(wanted)
        c.assign(tps)
        starts = await c.beginning_offsets(tps)
        for tp in tps:
            wanted[tp] = {o for o in wanted[tp] if o >= starts[tp]}
            if wanted[tp]:
                c.seek(tp, min(wanted[tp]))
        pending = {tp: max(offs) for tp, offs in wanted.items() if offs}
        c.pause(*[tp for tp in tps if tp not in pending])
        deadline = asyncio.get_running_loop().time() + timeout_s
        while pending:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"could not read {len(pending)} partition(s) of the log within {timeout_s:.0f}s")
            batch = await c.getmany(*pending, timeout_ms=500, max_records=1000)
            for tp, recs in batch.items():
                for rec in recs:
                    if rec.offset in wanted[tp] and (logged := await _decode(rec, keyring)) is not None:
                        out.append(logged)
            for tp in list(pending):  # done: past the highest wanted offset, or at the partition's end
                hw = c.highwater(tp)
                at = await c.position(tp)
                if at > pending[tp] or (hw is not None and at >= hw):
                    pending.pop(tp)
                    c.pause(tp)
    finally:
        await c.stop()
    out.sort(key=lambda logged: logged.event.occurred_at)
    return out


async def window_start(settings: Settings, topics: Sequence[str], since: datetime,
                       max_per_partition: int) -> dict[TopicPartition, int]:
    """Where a bounded read of ``topics`` starts: the first offset at or after ``since`` where the broker can
    look offsets up by time, and never more than ``max_per_partition`` records before each partition's end
    (a broker without a time index answers offset 0, so the cap is what bounds the read there)."""
    c, tps = await _consumer(settings, topics)
    try:
        if not tps:
            return {}
        ends = await c.end_offsets(tps)
        try:
            by_time = await c.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
        except Exception:  # noqa: BLE001 - no time index: the cap alone bounds the read
            by_time = {}
        start: dict[TopicPartition, int] = {}
        for tp in tps:
            if tp in by_time:  # None: no record that new (the partition has nothing in the window)
                found = by_time[tp]
                at = found.offset if found is not None else ends[tp]
            else:
                at = 0
            start[tp] = max(at, ends[tp] - max_per_partition, 0)
        return start
    finally:
        await c.stop()


def chain_of(logged: Sequence[Logged], wanted: str) -> tuple[str, list[Logged]] | None:
    """The correlation id and the events of the chain that ``wanted`` (an event id or a correlation id) is
    part of, in the order of ``logged``; None when no event has that id."""
    correlation = next((str(lg.event.correlation_id) for lg in logged
                        if str(lg.event.id) == wanted or str(lg.event.correlation_id) == wanted), None)
    if correlation is None:
        return None
    return correlation, [lg for lg in logged if str(lg.event.correlation_id) == correlation]


async def read(
    settings: Settings,
    topics: Sequence[str],
    keep: Callable[[Event], bool] = lambda _e: True,
    start: dict[TopicPartition, int] | None = None,
    timeout_s: float = 60.0,
    only_start: bool = False,
    keyring: Keyring | None = None,
    fetch_max_wait_ms: int = 500,
) -> list[Logged]:
    """Every event of ``topics`` from the beginning (or ``start``) up to the end as of now, oldest first (with
    ``only_start``, of the partitions in ``start`` only; a short ``fetch_max_wait_ms`` makes a read that finds
    little cost little)."""
    out: list[Logged] = []
    for rec in await read_records(settings, topics, start, timeout_s, only_start, fetch_max_wait_ms):
        logged = await _decode(rec, keyring)
        if logged is not None and keep(logged.event):
            out.append(logged)
    out.sort(key=lambda logged: logged.event.occurred_at)
    return out


async def follow(
    settings: Settings,
    topics: Sequence[str],
    keep: Callable[[Event], bool] = lambda _e: True,
    from_beginning: bool = False,
    start: dict[TopicPartition, int] | None = None,
    stop: asyncio.Event | None = None,
    keyring: Keyring | None = None,
) -> AsyncIterator[Logged]:
    """Events as they arrive (after the current end, or from the beginning / ``start``)."""
    c, tps = await _consumer(settings, topics)
    try:
        for tp in tps:
            if start and tp in start:
                c.seek(tp, start[tp])
            elif from_beginning:
                await c.seek_to_beginning(tp)
            else:
                await c.seek_to_end(tp)
        while stop is None or not stop.is_set():
            batch = await c.getmany(timeout_ms=300)
            recs = sorted((r for rs in batch.values() for r in rs), key=lambda r: r.timestamp)
            for rec in recs:
                logged = await _decode(rec, keyring)
                if logged is not None and keep(logged.event):
                    yield logged
    finally:
        await c.stop()
