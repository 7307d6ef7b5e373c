"""The log index and archive against the real broker and PostgreSQL: the indexer writes one row per record,
trace finds a chain through it (reading only its offsets, or its archived bytes), and an archive restores into
empty topics with the consumer groups' offsets carried over."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from agentbus.bus import Producer
from agentbus.bus.kafka import ensure_config_topic, ensure_topics
from agentbus.eventlog import read_at
from agentbus.events import Chat, Event, MessageReceived, MessageReceivedData, Sender, utcnow
from agentbus.logindex import Indexer, LogIndex, indexed_chain, open_log_index, restore
from agentbus.settings import Settings
from agentbus.topics import all_topics, topic_of
from tests.support.platform import Infra, unique_prefix

pytestmark = pytest.mark.integration


def settings(infra: Infra, prefix: str | None = None, **kw: object) -> Settings:
    return Settings(kafka_bootstrap_servers=infra.bootstrap, database_url=infra.database_url,
                    topic_prefix=prefix or unique_prefix(), topic_partitions=2, **kw)  # type: ignore[arg-type]


def chain(conv: str, n: int) -> list[Event]:
    """A message and ``n - 1`` events caused by it (one correlation id), in one conversation."""
    first = MessageReceived.new(
        MessageReceivedData(channel="c", channel_type="webhook", agent="a", platform_message_id=f"{conv}-0",
                            sender=Sender(id="u"), chat=Chat(id=conv), text=f"hello from {conv}",
                            received_at=utcnow()),
        source="test", tenant="t", conversation=f"t/c/{conv}")
    out: list[Event] = [first]
    for i in range(1, n):
        out.append(first.follow(MessageReceived, first.data.model_copy(update={"text": f"step {i}"}),
                                source="test", step=f"s{i}"))
    return out


@pytest.fixture
async def schema(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    suffix = f"_t{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("AGENTBUS_DB_SCHEMA_SUFFIX", suffix)
    yield f"eventlog{suffix}"


async def until(cond, timeout: float = 30.0, task: asyncio.Task[None] | None = None) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not await cond():
            if task is not None and task.done():
                raise AssertionError(f"the indexer stopped: {task.exception()!r}")
            await asyncio.sleep(0.1)


async def count(index: LogIndex, pool, prefix: str) -> int:  # type: ignore[no-untyped-def]
    async with pool.connection() as conn:
        [n] = await (await conn.execute("SELECT count(*) FROM records WHERE topic LIKE %s",
                                        (prefix + ".%",))).fetchone()
    return int(n)


async def test_indexer_rows_and_a_trace_read_at_its_offsets(infra: Infra, schema: str) -> None:
    s = settings(infra)
    await ensure_topics(s, all_topics(s.topic_prefix))
    await ensure_config_topic(s)
    prod = Producer(s, "test")
    await prod.start()
    chains = [chain(f"conv{i}", 3) for i in range(20)]
    index, pool = await open_log_index(s)
    indexer = Indexer(s, index)
    task = asyncio.create_task(indexer.run())
    try:
        await prod.publish([e for c in chains for e in c])
        await prod.send_raw(topic_of(s.topic_prefix, MessageReceived), b"not an event", b"k", [])
        await until(lambda: _at_least(index, pool, s.topic_prefix, 61), task=task)
        wanted = chains[7]
        found = await index.chain(str(wanted[1].id), "t")  # by an event id of the chain
        assert found is not None
        correlation, located = found
        assert correlation == str(wanted[0].correlation_id)
        assert len(located) == 3 and all(loc.value is None for loc in located)  # index only: no archive
        assert await index.chain(str(wanted[0].correlation_id), "other-tenant") is None
        assert await index.chain(str(uuid.uuid4()), "t") is None
        logged = await indexed_chain(s, index, str(wanted[0].correlation_id), "t")
        assert logged is not None and [lg.event.id for lg in logged] == [e.id for e in wanted]
        assert all(lg.topic == topic_of(s.topic_prefix, MessageReceived) for lg in logged)
        assert await count(index, pool, s.topic_prefix) == 61
        # events the indexer has not reached yet are read from the log past the last indexed offset
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        later = [wanted[0].follow(MessageReceived, wanted[0].data, source="test", step=f"late{i}") for i in range(2)]
        await prod.publish(later)
        logged = await indexed_chain(s, index, str(wanted[0].id), "t")
        assert logged is not None and [lg.event.id for lg in logged] == [e.id for e in [*wanted, *later]]
        assert await count(index, pool, s.topic_prefix) == 61
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await prod.stop()
        async with pool.connection() as conn:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await pool.close()


async def _at_least(index: LogIndex, pool, prefix: str, n: int) -> bool:  # type: ignore[no-untyped-def]
    return await count(index, pool, prefix) >= n


async def test_read_at_leaves_out_what_the_log_no_longer_holds(infra: Infra) -> None:
    s = settings(infra)
    await ensure_topics(s, all_topics(s.topic_prefix))
    prod = Producer(s, "test")
    await prod.start()
    try:
        events = chain("solo", 2)
        await prod.publish(events)
    finally:
        await prod.stop()
    topic = topic_of(s.topic_prefix, MessageReceived)
    c = AIOKafkaConsumer(topic, bootstrap_servers=infra.bootstrap, group_id=None, auto_offset_reset="earliest")
    await c.start()
    try:
        recs = [r for rs in (await c.getmany(timeout_ms=3000)).values() for r in rs]
    finally:
        await c.stop()
    assert len(recs) == 2
    got = await read_at(s, [(r.topic, r.partition, r.offset) for r in recs] + [(topic, recs[0].partition, 10_000)])
    assert [lg.event.id for lg in got] == [e.id for e in events]


async def test_archive_restores_into_empty_topics_with_group_offsets(infra: Infra, schema: str) -> None:
    old = settings(infra, log_archive=True)
    await ensure_topics(old, all_topics(old.topic_prefix))
    await ensure_config_topic(old)
    prod = Producer(old, "test")
    await prod.start()
    events = [e for i in range(10) for e in chain(f"r{i}", 2)]
    topic = topic_of(old.topic_prefix, MessageReceived)
    group = f"{old.consumer_group_prefix}.{old.topic_prefix}.memory"
    index, pool = await open_log_index(old)
    indexer = Indexer(old, index)
    task = asyncio.create_task(indexer.run())
    try:
        await prod.publish(events)
        # a service's group has read partition 0 to its end and partition 1 up to one record short
        ends = await _ends(infra, topic)
        await _commit(infra, group, {TopicPartition(topic, 0): ends[0], TopicPartition(topic, 1): ends[1] - 1})
        await until(lambda: _at_least(index, pool, old.topic_prefix, 20), task=task)
        await indexer.snapshot_groups()
        assert await index.archived() >= 20
        found = await index.chain(str(events[4].correlation_id), "t")
        assert found is not None and all(loc.value is not None for loc in found[1])  # archived bytes
        logged = await indexed_chain(old, index, str(events[4].correlation_id), "t")
        assert logged is not None and [lg.event.id for lg in logged] == [events[4].id, events[5].id]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await prod.stop()

    # the same archive, as it would be found by a fresh broker: the topics and groups of a new prefix
    new = settings(infra, log_archive=True)
    async with pool.connection() as conn:
        await conn.execute("UPDATE records SET topic = replace(topic, %s, %s)", (old.topic_prefix + ".",
                                                                                new.topic_prefix + "."))
        await conn.execute("UPDATE group_offsets SET topic = replace(topic, %s, %s), group_id = replace(group_id, "
                           "%s, %s)", (old.topic_prefix + ".", new.topic_prefix + ".", "." + old.topic_prefix + ".",
                                       "." + new.topic_prefix + "."))
    await ensure_topics(new, all_topics(new.topic_prefix))
    await ensure_config_topic(new)
    try:
        restored = await restore(new)
        assert restored >= 20
        assert await restore(new) == 0, "a broker that holds records is not restored into twice"
        new_topic = topic_of(new.topic_prefix, MessageReceived)
        assert await _ends(infra, new_topic) == ends
        c = AIOKafkaConsumer(new_topic, bootstrap_servers=infra.bootstrap, group_id=None,
                             auto_offset_reset="earliest")
        await c.start()
        try:
            recs = [r for rs in (await c.getmany(timeout_ms=3000, max_records=100)).values() for r in rs]
        finally:
            await c.stop()
        assert sorted(r.value for r in recs) == sorted(e.to_bytes() for e in events)
        # the service's group resumes where it was: nothing on partition 0, the last record of partition 1
        g = AIOKafkaConsumer(new_topic, bootstrap_servers=infra.bootstrap,
                             group_id=f"{new.consumer_group_prefix}.{new.topic_prefix}.memory",
                             enable_auto_commit=False, auto_offset_reset="earliest")
        await g.start()
        try:
            await until(lambda: _assigned(g), 30)
            resumed = [r for rs in (await g.getmany(timeout_ms=3000)).values() for r in rs]
        finally:
            await g.stop()
        assert [(r.partition, r.offset) for r in resumed] == [(1, ends[1] - 1)]
    finally:
        async with pool.connection() as conn:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await pool.close()


async def _assigned(c: AIOKafkaConsumer) -> bool:
    return bool(c.assignment())


async def _ends(infra: Infra, topic: str) -> dict[int, int]:
    """Each partition's end, as the offset after its last record read (some brokers answer ListOffsets short)."""
    c = AIOKafkaConsumer(topic, bootstrap_servers=infra.bootstrap, group_id=None, auto_offset_reset="earliest")
    await c.start()
    try:
        recs = [r for rs in (await c.getmany(timeout_ms=3000, max_records=1000)).values() for r in rs]
    finally:
        await c.stop()
    ends = {0: 0, 1: 0}
    for r in recs:
        ends[r.partition] = max(ends[r.partition], r.offset + 1)
    return ends


async def _commit(infra: Infra, group: str, offsets: dict[TopicPartition, int]) -> None:
    c = AIOKafkaConsumer(bootstrap_servers=infra.bootstrap, group_id=group, enable_auto_commit=False)
    await c.start()
    try:
        c.assign(list(offsets))
        await c.commit(offsets)
    finally:
        await c.stop()



async def test_a_replay_selection_through_the_index_counts_what_the_log_no_longer_holds(
        infra: Infra, schema: str) -> None:
    """The index knows a tenant's messages; the log holds only some (the others are gone, as retention removes
    them): the selection returns those it can read, in order, and counts the rest instead of finding nothing."""
    from agentbus.eventlog import Filter
    from agentbus.replayruns import select_entries

    s = settings(infra)
    await ensure_topics(s, all_topics(s.topic_prefix))
    prod = Producer(s, "test")
    await prod.start()
    kept = [chain(f"k{i}", 1)[0] for i in range(3)]
    gone = [chain(f"g{i}", 1)[0] for i in range(4)]
    index, pool = await open_log_index(s)
    indexer = Indexer(s, index)
    task = asyncio.create_task(indexer.run())
    try:
        await prod.publish(gone)
        await until(lambda: _at_least(index, pool, s.topic_prefix, 4), task=task)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        # those four records leave the log: their rows now point past the ends of a fresh topic's partitions,
        # where the log holds nothing (what an index row of a record removed by retention looks like to a read)
        fresh = unique_prefix()
        await ensure_topics(settings(infra, fresh), all_topics(fresh))
        async with pool.connection() as conn:
            await conn.execute('UPDATE records SET topic = replace(topic, %s, %s), "offset" = "offset" + 1000',
                               (s.topic_prefix + ".", fresh + "."))
        s2 = settings(infra, fresh)
        prod2 = Producer(s2, "test")
        await prod2.start()
        try:
            await prod2.publish(kept)
        finally:
            await prod2.stop()
        task = asyncio.create_task(Indexer(s2, index).run())
        await until(lambda: _at_least(index, pool, fresh, 7), task=task)
        keep = Filter(tenant="t", include_replays=False)
        chosen, truncated, expired = await select_entries(s2, "message.received", keep, 10, index=index)
        assert [e.id for e in chosen] == [e.id for e in kept] and not truncated
        assert expired == 4
        chosen, truncated, _ = await select_entries(s2, "message.received", keep, 2, index=index)
        assert [e.id for e in chosen] == [e.id for e in kept[:2]] and truncated
        # without the index the same selection finds the three, and cannot tell that four are gone
        assert (await select_entries(s2, "message.received", keep, 10))[2] == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await prod.stop()
        async with pool.connection() as conn:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await pool.close()
