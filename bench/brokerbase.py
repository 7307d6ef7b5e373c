"""Baseline: the broker alone, in its own process: ``python -m bench.brokerbase <spec.json>``.

A producer with the platform's settings (acks=all, lz4, linger 2 ms) sends messages the size and shape
of a real ``message.received`` event (its JSON, keyed by conversation, with the event headers) to a topic
with the platform's partition count; a consumer (the platform's fetch wait) in the same process, as in a
service, receives them. Reports produce→consume latency, produce→ack latency, and messages per second,
once paced at a target rate and once at full speed (a window of outstanding sends).
"""

from __future__ import annotations

import asyncio
import resource
import struct
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson


def sample_event(i: int) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """A message.received event as ingress builds it from the load generator's payload."""
    from agentbus.bus.producer import event_headers
    from agentbus.events import Chat, MessageReceived, MessageReceivedData, Sender
    from bench.load import payload

    _, body = payload("broker", i, 2000)
    conv = f"acme/acme/{body['conversation']}"
    ev = MessageReceived.new(
        MessageReceivedData(channel="acme", channel_type="webhook", agent="assistant",
                            platform_message_id=body["message_id"], sender=Sender(id=body["sender"]["id"]),
                            chat=Chat(id=body["conversation"], type="direct"), text=body["text"],
                            mentioned_bot=True, reply_route={"conversation": body["conversation"]},
                            received_at=datetime.now(UTC)),
        source="ingress", tenant="acme", conversation=conv,
    )
    return ev.to_bytes(), conv.encode(), event_headers(ev)


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    bootstrap, parts = spec["bootstrap"], spec["partitions"]
    topic = f"bench-baseline-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, parts, 1)])
    await admin.close()
    value, _, headers = sample_event(0)
    keys = [sample_event(i)[1] for i in range(200)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="lz4", linger_ms=2,
                                max_request_size=4 * 1024 * 1024)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20,
                                max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=16 * 1024 * 1024)
    await producer.start()
    await consumer.start()
    tps = [TopicPartition(topic, p) for p in range(parts)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    out: dict[str, Any] = {"message_bytes": len(value), "partitions": parts}

    async def phase(name: str, count: int, rate: float | None, window: int) -> None:
        e2e: list[float] = []
        acks: list[float] = []
        got = 0
        done = asyncio.Event()

        async def consume() -> None:
            nonlocal got
            while got < count:
                batch = await consumer.getmany(timeout_ms=200, max_records=1000)
                now = time.monotonic()
                for recs in batch.values():
                    for r in recs:
                        t = dict(r.headers).get("bench-t")
                        if t is not None:
                            e2e.append(now - struct.unpack("d", t)[0])
                            got += 1
            done.set()

        consumer_task = asyncio.create_task(consume())
        room = asyncio.Semaphore(window)

        async def one(i: int) -> None:
            t = time.monotonic()
            fut = await producer.send(topic, value=value, key=keys[i % len(keys)],
                                      headers=[*headers, ("bench-t", struct.pack("d", t))])
            await fut
            acks.append(time.monotonic() - t)
            room.release()

        t0 = time.monotonic()
        tasks = []
        for i in range(count):
            if rate:
                wait = t0 + i / rate - time.monotonic()
                if wait > 0.0005:
                    await asyncio.sleep(wait)
            await room.acquire()
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        try:
            await asyncio.wait_for(done.wait(), 60)
        except TimeoutError:
            consumer_task.cancel()
        elapsed = time.monotonic() - t0
        out[name] = {
            "count": count, "received": got, "target_rate": rate, "msg_per_s": got / elapsed,
            "e2e_p50_ms": 1000 * _pct(e2e, 0.50), "e2e_p95_ms": 1000 * _pct(e2e, 0.95),
            "e2e_p99_ms": 1000 * _pct(e2e, 0.99),
            "ack_p50_ms": 1000 * _pct(acks, 0.50), "ack_p99_ms": 1000 * _pct(acks, 0.99),
        }

    await phase("paced", spec["paced_count"], spec["rate"], 1000)
    await phase("max", spec["max_count"], None, spec.get("window", 1000))
    await producer.stop()
    await consumer.stop()
    return out


def main(argv: list[str] | None = None) -> None:
    import uvloop

    args = argv if argv is not None else sys.argv[1:]
    spec = orjson.loads(Path(args[0]).read_bytes())
    out = uvloop.run(run(spec))
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out["cpu_s"] = ru.ru_utime + ru.ru_stime
    print(orjson.dumps(out).decode(), flush=True)


if __name__ == "__main__":
    main()
