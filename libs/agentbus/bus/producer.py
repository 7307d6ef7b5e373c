"""Publishing events: acks=all, keyed by conversation, trace context and event identity in headers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner, murmur2
from opentelemetry.trace import SpanKind

from agentbus import metrics
from agentbus.bus.kafka import client_options
from agentbus.events import Event
from agentbus.settings import Settings
from agentbus.telemetry import inject_headers, tracer
from agentbus.topics import topic_of

if TYPE_CHECKING:
    from agentbus.sealing import Keyring

MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def event_headers(event: Event) -> list[tuple[str, bytes]]:
    extra = [
        ("event-id", str(event.id).encode()),
        ("event-type", event.TYPE.encode()),
        ("event-version", str(event.VERSION).encode()),
        ("correlation-id", str(event.correlation_id).encode()),
    ]
    if event.replay:
        extra.append(("replay", event.replay.run.encode()))
    return inject_headers(extra)


class KeyPartitioner:
    """Kafka's default partitioning (murmur2 of the key, as every Kafka client computes it), with each
    key's hash remembered. Keys are conversations, which repeat; aiokafka's murmur2 is pure Python (5 µs a
    key here, 1-2% of a service's CPU in profiles). Records without a key go where aiokafka's default puts
    them."""

    def __init__(self, keys: int = 65536) -> None:
        self._hash = lru_cache(maxsize=keys)(murmur2)

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return DefaultPartitioner()(key, all_partitions, available)
        return all_partitions[(self._hash(key) & 0x7FFFFFFF) % len(all_partitions)]


class Producer:
    """With a ``keyring``, a person's text in the events it publishes is sealed with their data key (the services'
    producers have one; a command line's, which publishes no one's text, has none)."""

    def __init__(self, settings: Settings, service: str, keyring: Keyring | None = None) -> None:
        self._s = settings
        self._service = service
        self._producer: AIOKafkaProducer | None = None
        self.keyring = keyring

    async def start(self) -> None:
        opts = client_options(self._s)
        self._producer = AIOKafkaProducer(
            **opts,
            acks="all",
            enable_idempotence=self._s.kafka_idempotent_producer,
            compression_type=self._s.kafka_compression,
            linger_ms=0,
            partitioner=KeyPartitioner(),
            max_request_size=MAX_MESSAGE_BYTES,
            request_timeout_ms=30000,
            client_id=f"agentbus-{self._service}",
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    @property
    def raw(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("producer not started")
        return self._producer

    async def publish(self, events: Sequence[Event]) -> None:
        """Send every event and wait until the broker has acknowledged all of them (acks=all)."""
        if not events:
            return
        futures = []
        if self.keyring is not None:
            from agentbus.sealing.wire import seal_event

            values = [await seal_event(self.keyring, e) for e in events]
        else:
            values = [e.to_bytes() for e in events]
        for event, value in zip(events, values, strict=True):
            topic = topic_of(self._s.topic_prefix, event)
            with tracer().start_as_current_span(f"{topic} publish", kind=SpanKind.PRODUCER) as span:
                span.set_attribute("messaging.system", "kafka")
                span.set_attribute("messaging.destination.name", topic)
                span.set_attribute("messaging.message.id", str(event.id))
                span.set_attribute("agentbus.conversation", event.conversation)
                futures.append(
                    await self.raw.send(
                        topic,
                        value=value,
                        key=event.conversation.encode(),
                        headers=event_headers(event),
                    )
                )
        await asyncio.gather(*futures)
        for event in events:
            metrics.child(metrics.EVENTS_PRODUCED, event.TYPE).inc()

    async def send_raw(
        self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        fut = await self.raw.send(topic, value=value, key=key, headers=headers)
        await fut
