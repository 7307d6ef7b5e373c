"""Trace through the log index with a million events on the log (`make bench-trace`).

Starts the embedded broker and PostgreSQL, writes EVENTS agentbus events (chains of five, as a message's
received → context → inference → reply → delivery, across CONVERSATIONS conversations) to the log, lets ingress's
indexer (archiving, as on `make up`) index them all, then times `trace` of random messages through the index,
and once the old way (every topic read from offset 0) for comparison. Prints one table and writes JSON to
bench/results/trace-<time>.json: index and archive sizes (bytes per million events), indexing rate, trace
latency p50/p95/max.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from agentbus.bus.kafka import client_options, ensure_config_topic, ensure_topics
from agentbus.eventlog import chain_of, read
from agentbus.logindex import Indexer, indexed_chain, open_log_index
from agentbus.settings import Settings
from agentbus.stack.stack import Ports, Stack
from agentbus.topics import all_topics, topic_for

STEPS = ("message.received", "context.assembled", "reply.generated", "delivery.completed")
CONV = "ZZCONVZZ"


def templates() -> list[tuple[str, bytes, list[str]]]:
    """One real event per step of a message's chain (validated by the platform's own models, as trace parses
    them), as bytes with placeholders: (topic type and version, bytes, the ids to replace per chain)."""
    from agentbus.events import (
        Chat,
        ContextAssembled,
        ContextAssembledData,
        DeliveryCompleted,
        DeliveryCompletedData,
        MessageReceived,
        MessageReceivedData,
        ReplyGenerated,
        ReplyGeneratedData,
        Sender,
        Turn,
        utcnow,
    )

    now = utcnow()
    text = "a question of ordinary length, about the size people type into a chat " * 3
    msg = MessageReceived.new(
        MessageReceivedData(channel="acme", channel_type="webhook", agent="assistant", platform_message_id=CONV,
                            sender=Sender(id="u1"), chat=Chat(id=CONV), text=text, received_at=now),
        source="ingress", tenant="acme", conversation=f"acme/acme/{CONV}")
    ctx = msg.follow(ContextAssembled, ContextAssembledData(
        agent="assistant", channel="acme", channel_type="webhook", chat=Chat(id=CONV), trigger="message",
        input=Turn(role="user", text=text, at=now)), source="memory", step="context")
    reply = ctx.follow(ReplyGenerated, ReplyGeneratedData(
        agent="assistant", channel="acme", channel_type="webhook", chat=Chat(id=CONV), text=text * 2, model="m"),
        source="reasoner", step="reply")
    done = reply.follow(DeliveryCompleted, DeliveryCompletedData(
        reply_id=reply.id, channel="acme", channel_type="webhook", status="delivered", attempts=1, latency_ms=1.0),
        source="egress", step="delivery")
    ids = [str(e.id) for e in (msg, ctx, reply, done)]
    return [(topic_for("bench", e.TYPE, e.VERSION), e.to_bytes(), ids) for e in (msg, ctx, reply, done)]


async def fill(s: Settings, events: int, conversations: int) -> list[str]:
    """About EVENTS records on the log, in chains; returns the correlation ids (each chain's first id)."""
    from aiokafka import AIOKafkaProducer

    steps = templates()
    producer = AIOKafkaProducer(**client_options(s), acks=1, linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    correlations: list[str] = []
    try:
        pending = []
        for i in range(events // len(steps)):
            conv = f"c{i % conversations}"
            fresh = [str(uuid.uuid4()) for _ in steps]
            correlations.append(fresh[0])
            for topic, raw, ids in steps:
                value = raw.replace(CONV.encode(), conv.encode())
                for old, new in zip(ids, fresh, strict=True):
                    value = value.replace(old.encode(), new.encode())
                pending.append(await producer.send(topic, value, key=f"acme/acme/{conv}".encode()))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return correlations


async def table_bytes(pool) -> dict[str, int]:  # type: ignore[no-untyped-def]
    async with pool.connection() as conn:
        rows = await (await conn.execute(
            "SELECT pg_total_relation_size('records'), pg_indexes_size('records'), "
            "(SELECT coalesce(sum(pg_column_size(value)) + sum(pg_column_size(key)) + sum(pg_column_size(headers)), 0)"
            " FROM records)")).fetchone()
    total, indexes, archived = (int(x) for x in rows)
    return {"total": total, "indexes": indexes, "archived_columns": archived}


async def main(events: int, conversations: int, samples: int, scan: bool) -> dict[str, object]:
    home = Path(tempfile.mkdtemp(prefix="agentbus-bench-trace-"))
    for k in ("AGENTBUS_KAFKA_BOOTSTRAP_SERVERS", "AGENTBUS_DATABASE_URL", "AGENTBUS_EMBEDDINGS_URL"):
        os.environ.pop(k, None)
    stack = Stack(home=home, config_file=home / "unused.yaml", ports=Ports.free(), echo=False,
                  env={"AGENTBUS_EMBEDDINGS_URL": ""}, archive_log=False)
    env = await stack.start_infra()
    try:
        s = Settings(kafka_bootstrap_servers=env["AGENTBUS_KAFKA_BOOTSTRAP_SERVERS"],
                     database_url=env["AGENTBUS_DATABASE_URL"], topic_prefix="bench", topic_partitions=6,
                     log_archive=True)
        await ensure_topics(s, all_topics(s.topic_prefix))
        await ensure_config_topic(s)
        t0 = time.monotonic()
        correlations = await fill(s, events, conversations)
        written = len(correlations) * len(STEPS)
        fill_s = time.monotonic() - t0
        index, pool = await open_log_index(s, max_size=4)
        indexer = Indexer(s, index)
        t0 = time.monotonic()
        task = asyncio.create_task(indexer.run())
        while indexer.indexed < written:
            if task.done():
                raise RuntimeError(f"the indexer stopped: {task.exception()!r}")
            await asyncio.sleep(0.5)
        index_s = time.monotonic() - t0
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        sizes = await table_bytes(pool)
        timings = []
        for corr in random.sample(correlations, min(samples, len(correlations))):
            t = time.perf_counter()
            chain = await indexed_chain(s, index, corr, "acme")
            timings.append((time.perf_counter() - t) * 1000)
            assert chain is not None and len(chain) == len(STEPS), (corr, chain and len(chain))
        scan_ms = None
        if scan:
            t = time.perf_counter()
            found = chain_of(await read(s, all_topics(s.topic_prefix), timeout_s=3600), correlations[0])
            scan_ms = (time.perf_counter() - t) * 1000
            assert found is not None and len(found[1]) == len(STEPS)
        await pool.close()
    finally:
        await stack.stop()
    per_million = 1_000_000 / written
    q = statistics.quantiles(timings, n=20)
    return {
        "events": written, "conversations": conversations, "fill_s": round(fill_s, 1),
        "indexed_per_s": round(written / index_s), "index_s": round(index_s, 1),
        "table_mb_per_million": round(sizes["total"] * per_million / 2**20, 1),
        "indexes_mb_per_million": round(sizes["indexes"] * per_million / 2**20, 1),
        "archived_mb_per_million": round(sizes["archived_columns"] * per_million / 2**20, 1),
        "trace_ms_p50": round(statistics.median(timings), 1), "trace_ms_p95": round(q[18], 1),
        "trace_ms_max": round(max(timings), 1), "samples": len(timings),
        "scan_trace_ms": round(scan_ms) if scan_ms is not None else None,
    }


def cli() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--conversations", type=int, default=10_000)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--scan", action="store_true", help="also time one trace the old way (every topic from 0)")
    args = ap.parse_args()
    result = asyncio.run(main(args.events, args.conversations, args.samples, args.scan))
    width = max(len(k) for k in result)
    for k, v in result.items():
        print(f"{k:<{width}}  {v}")
    out = Path(__file__).parent / "results" / f"trace-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"written to {out}")


if __name__ == "__main__":
    cli()
