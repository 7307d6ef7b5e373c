"""The way back of the chat API: every ingress replica reads every reply, and completes the requests it holds.

A chat request waits on the replica that took it, but its reply.generated (and reply.progress, for a stream)
lands on whatever partition its conversation hashes to. So each replica consumes both topics with a consumer
group of its own (unique per process: every replica sees every event), from the end as of its start, and
commits nothing: a replica that restarts has lost its waiting requests anyway, and the replies themselves
are remembered by memory and recorded by egress whether anybody waits or not. Replies of other channel
types, of replays (shadow runs), and for requests held elsewhere are skipped.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaConsumer

from agentbus.bus.kafka import client_options
from agentbus.events import Event, ReplyGenerated, ReplyProgress
from agentbus.sealing import Keyring
from agentbus.sealing.wire import open_event
from agentbus.settings import Settings
from agentbus.topics import topics_of_type

log = structlog.get_logger("agentbus.ingress.chat")
CHANNEL_TYPE = "api"


@dataclass(frozen=True)
class Update:
    """The answer so far (``final`` False, a reply.progress partial) or the answer (a reply.generated)."""

    text: str
    final: bool
    seq: int = 0


class Waiters:
    """The requests this replica holds, by (channel, in_reply_to): each gets the updates of its answer."""

    def __init__(self) -> None:
        self._queues: dict[tuple[str, str], asyncio.Queue[Update]] = {}

    def open(self, channel: str, in_reply_to: str) -> asyncio.Queue[Update]:
        """Opened before the question is published, so no answer can come before anyone listens."""
        queue: asyncio.Queue[Update] = asyncio.Queue()
        self._queues[(channel, in_reply_to)] = queue
        return queue

    def close(self, channel: str, in_reply_to: str) -> None:
        self._queues.pop((channel, in_reply_to), None)

    def offer(self, event: Event) -> bool:
        """Hand an event to the request waiting for it; False when none here is."""
        if isinstance(event, ReplyGenerated):
            update = Update(event.data.text, True)
        elif isinstance(event, ReplyProgress) and event.data.stage == "partial":
            update = Update(event.data.text, False, event.data.seq)
        else:
            return False
        d = event.data
        if d.channel_type != CHANNEL_TYPE or d.in_reply_to is None or event.replay is not None:
            return False
        queue = self._queues.get((d.channel, d.in_reply_to))
        if queue is None:
            return False
        queue.put_nowait(update)
        return True

    def __len__(self) -> int:
        return len(self._queues)


def group_id(settings: Settings) -> str:
    return (f"{settings.consumer_group_prefix}.{settings.topic_prefix}.ingress-replies."
            f"{os.getpid()}-{uuid.uuid4().hex[:8]}")


class ReplyFollower:
    """Reads reply.generated and reply.progress for ``waiters``; ``ready`` once its partitions' positions are
    known (a request taken earlier could miss its answer)."""

    def __init__(self, settings: Settings, waiters: Waiters, keyring: Keyring | None = None) -> None:
        self._settings = settings
        self._waiters = waiters
        self._keyring = keyring  # opens the answer's text (sealed with the asker's key)
        self.ready = False

    async def run(self) -> None:
        """Follow until cancelled; a consumer that fails is started again (the chat API answers 503 meanwhile),
        since a background task that ends stops the service."""
        failures = 0
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                log.warning("chat_replies_interrupted", error=f"{type(exc).__name__}: {exc}"[:300])
                await asyncio.sleep(min(30.0, 0.5 * 2 ** min(failures, 6)))

    async def _follow(self) -> None:
        s = self._settings
        topics = [*topics_of_type(s.topic_prefix, ReplyGenerated.TYPE), *topics_of_type(s.topic_prefix,
                                                                                       ReplyProgress.TYPE)]
        consumer = AIOKafkaConsumer(
            *topics, **client_options(s), group_id=group_id(s), enable_auto_commit=False,
            auto_offset_reset="latest", session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms, max_partition_fetch_bytes=8 * 1024 * 1024)
        await consumer.start()
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=200)
                if not self.ready and consumer.assignment():
                    for tp in consumer.assignment():
                        await consumer.position(tp)  # resolves "latest" now, before requests are taken
                    self.ready = True
                    log.info("chat_replies_following", partitions=len(consumer.assignment()))
                for records in batch.values():
                    for rec in records:
                        try:
                            event = await open_event(self._keyring, rec.value)
                        except ValueError:
                            continue
                        self._waiters.offer(event)
        finally:
            self.ready = False
            await consumer.stop()

    async def check(self) -> tuple[bool, str]:
        return self.ready, "following replies" if self.ready else "waiting for reply partitions"
