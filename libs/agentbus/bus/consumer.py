"""The consumer runner: at-least-once delivery with exactly-once effects left to idempotent handlers.

Events of different conversations (record keys) run concurrently, up to ``max_in_flight``; events of the
same key run one after another in offset order. The offset committed for a partition is its low
watermark: the first offset not yet finished, so a crash never skips an unfinished event. A failing event
is retried (see ``errors``), then dead-lettered with the error, and only then counted as finished.
"""

from __future__ import annotations

import asyncio
import random
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, Status, StatusCode
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from agentbus import metrics
from agentbus.bus.deadletter import dead_letter_event
from agentbus.bus.errors import PermanentError, is_transient
from agentbus.bus.kafka import client_options
from agentbus.bus.producer import Producer
from agentbus.bus.watermark import Watermark
from agentbus.events import Event, UnknownEvent, latest_version, parse_event
from agentbus.retrying import failure, jittered
from agentbus.sealing import Keyring
from agentbus.sealing.wire import open_event
from agentbus.settings import Settings
from agentbus.telemetry import extract_context, tracer
from agentbus.topics import topics_of_type

log = structlog.get_logger("agentbus.consumer")

# a handler takes the typed event of its route (``MessageReceived``, not ``Event``) and returns its outputs
Handler = Callable[[Any], Awaitable[Sequence[Event]]]
Routes = Mapping[type[Event], Handler]
# what a service publishes when it gives up on an event (an apology to the chat), beside its dead letter
GiveUp = Callable[[Any, BaseException], Awaitable[Sequence[Event]]]


def subscriptions(prefix: str, routes: Routes) -> dict[str, Handler]:
    """topic → handler: every version's topic of each routed event type (older versions are upcast on read,
    so a route names the newest version's class)."""
    topics: dict[str, Handler] = {}
    for cls, handler in routes.items():
        if cls.VERSION != latest_version(cls.TYPE):
            raise ValueError(f"route {cls.__name__}: handlers take the newest version of {cls.TYPE}")
        for topic in topics_of_type(prefix, cls.TYPE):
            topics[topic] = handler
    return topics


class _Abandon(Exception):
    """Stop working on a key's queue without finishing (or committing) the current event."""


@dataclass
class _KeyQueue:
    records: deque[ConsumerRecord] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


class RetryBudget:
    """At most ``per_minute`` non-transient retries across the service; past it, failures dead-letter at once."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._stamps: deque[float] = deque()

    def take(self) -> bool:
        now = time.monotonic()
        while self._stamps and now - self._stamps[0] > 60:
            self._stamps.popleft()
        if len(self._stamps) >= self.per_minute:
            return False
        self._stamps.append(now)
        return True


@dataclass
class _Tries:
    """Tenacity's stop decision for one event, after each failed try.

    A permanent error dead-letters at once. A transient one (the database or broker away) is not the event's
    fault: it does not use up the event's attempts and is retried until the transient deadline. Anything
    else counts against ``handler_attempts`` and the service-wide retry budget. While shutting down, an
    event that would be retried is abandoned instead (left uncommitted for the next owner)."""

    runner: ConsumerRunner
    event_type: str
    at_fault: int = 0
    first_failure: float | None = None
    abandon: bool = False
    transient: bool = False

    def stop(self, rs: RetryCallState) -> bool:
        return self.decide(failure(rs))

    def decide(self, exc: BaseException) -> bool:
        """Whether to stop trying after this failure (to dead-letter it, or, shutting down, to abandon it)."""
        r = self.runner
        now = time.monotonic()
        self.first_failure = self.first_failure or now
        self.transient = is_transient(exc) and not isinstance(exc, PermanentError)
        if isinstance(exc, PermanentError):
            give_up = True
        elif self.transient:
            give_up = now - self.first_failure > r._transient_deadline_s
        else:
            self.at_fault += 1
            give_up = self.at_fault >= r._s.handler_attempts or not r._budget.take()
        if not give_up and r._stopping.is_set():
            self.abandon = True
            return True
        return give_up

    def report(self, rs: RetryCallState) -> None:
        self.reported(failure(rs), rs.upcoming_sleep)

    def reported(self, exc: BaseException, delay_s: float) -> None:
        kind = "transient" if self.transient else "error"
        metrics.RETRIES.labels(type=self.event_type, kind=kind).inc()
        log.warning("handler_retry", kind=kind, attempt=self.at_fault, error=f"{type(exc).__name__}: {exc}"[:500],
                    delay_s=round(delay_s, 3))


_LIVE: weakref.WeakSet[ConsumerRunner] = weakref.WeakSet()


def _total(attr: str) -> float:
    return float(sum(getattr(runner, attr) for runner in list(_LIVE)))


# read when scraped, not written on every event (three gauge writes per event took 2% of egress's CPU)
metrics.IN_FLIGHT.set_function(lambda: _total("_running"))
metrics.BUFFERED.set_function(lambda: _total("_buffered"))


class ConsumerRunner(ConsumerRebalanceListener):
    def __init__(
        self,
        settings: Settings,
        service: str,
        producer: Producer,
        routes: Routes,
        group_id: str | None = None,
        transient_deadline_s: float = 900.0,
        give_up: Mapping[type[Event], GiveUp] | None = None,
        keyring: Keyring | None = None,
    ) -> None:
        self._s = settings
        self._keyring = keyring  # opens the people's sealed text before handlers see the events
        self._service = service
        self._producer = producer
        self._routes = subscriptions(settings.topic_prefix, routes)
        self._give_up = {cls.TYPE: fn for cls, fn in (give_up or {}).items()}
        self._group = group_id or f"{settings.consumer_group_prefix}.{settings.topic_prefix}.{service}"
        self._transient_deadline_s = transient_deadline_s
        self._consumer: AIOKafkaConsumer | None = None
        self._marks: dict[TopicPartition, Watermark] = {}
        self._keys: dict[tuple[TopicPartition, bytes | None], _KeyQueue] = {}
        self._sem = asyncio.Semaphore(settings.max_in_flight)
        self._buffered = 0
        self._running = 0
        self._room = asyncio.Event()
        self._room.set()
        self._stopping = asyncio.Event()
        self._budget = RetryBudget(settings.retry_budget_per_minute)
        self._commit_lock = asyncio.Lock()
        self._wait = jittered(settings.retry_initial_s, settings.retry_max_s)
        # the waits of tries 3, 4, ... (the first retry waits ``_wait.nominal(1)`` before tenacity takes over)
        self._later_wait = jittered(settings.retry_initial_s * 2, settings.retry_max_s)
        self.assigned = False
        self.started = False
        _LIVE.add(self)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            **client_options(self._s),
            group_id=self._group,
            client_id=f"agentbus-{self._service}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self._s.session_timeout_ms,
            heartbeat_interval_ms=self._s.heartbeat_interval_ms,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=16 * 1024 * 1024,
            max_poll_interval_ms=600_000,
            fetch_max_wait_ms=20,
        )
        await self._consumer.start()
        self._consumer.subscribe(topics=list(self._routes), listener=self)
        self.started = True

    async def run(self) -> None:
        """Fetch and dispatch until ``stop``; then drain in-flight work and commit."""
        assert self._consumer is not None, "start() first"
        committer = asyncio.create_task(self._commit_loop())
        try:
            while not self._stopping.is_set():
                if self._buffered >= self._s.max_buffered:
                    self._room.clear()
                    stop_wait = asyncio.ensure_future(self._stopping.wait())
                    room_wait = asyncio.ensure_future(self._room.wait())
                    await asyncio.wait({stop_wait, room_wait}, return_when=asyncio.FIRST_COMPLETED)
                    stop_wait.cancel()
                    room_wait.cancel()
                    continue
                batch = await self._consumer.getmany(timeout_ms=200, max_records=1000)
                for tp, records in batch.items():
                    mark = self._marks.get(tp)
                    if mark is None:  # revoked between fetch and dispatch
                        continue
                    for rec in records:
                        if not mark.add(rec.offset):
                            continue  # already seen (redelivered by a seek)
                        self._dispatch(tp, rec)
        finally:
            committer.cancel()
            await self._drain(self._s.shutdown_grace_s)
            await self._commit()

    async def stop(self) -> None:
        """Graceful: stop fetching; ``run`` then finishes in-flight work (within the grace period) and commits."""
        self._stopping.set()

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    @property
    def in_flight(self) -> int:
        return self._buffered

    # ------------------------------------------------------------------ rebalance

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        tps = set(revoked)
        tasks = [q.task for (tp, _), q in self._keys.items() if tp in tps and q.task is not None]
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=self._s.shutdown_grace_s)
            for t in pending:  # abandoned: not committed past, the next owner redoes them
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        await self._commit(only=tps)
        for key in [k for k in self._keys if k[0] in tps]:
            q = self._keys.pop(key)
            self._buffered -= len(q.records)
            q.records.clear()
        for tp in tps:
            self._marks.pop(tp, None)
        self._make_room()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        assert self._consumer is not None
        for tp in assigned:
            self._marks[tp] = Watermark()
        self.assigned = True
        log.info("partitions_assigned", count=len(assigned))

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, tp: TopicPartition, rec: ConsumerRecord) -> None:
        key = (tp, rec.key)
        q = self._keys.get(key)
        if q is None:
            q = self._keys[key] = _KeyQueue()
        q.records.append(rec)
        self._buffered += 1
        self._make_room()
        if q.task is None:
            q.task = asyncio.create_task(self._drain_key(key, q))

    async def _drain_key(self, key: tuple[TopicPartition, bytes | None], q: _KeyQueue) -> None:
        tp = key[0]
        try:
            while q.records and not self._abandoned(tp):
                rec = q.records[0]
                async with self._sem:
                    self._running += 1
                    try:
                        await self._process(rec)
                    except _Abandon:
                        return
                    finally:
                        self._running -= 1
                q.records.popleft()
                self._buffered -= 1
                self._make_room()
                mark = self._marks.get(tp)
                if mark is not None:
                    mark.done(rec.offset)
        finally:
            self._buffered -= len(q.records)  # abandoned or cancelled: never marked done
            q.records.clear()
            self._make_room()
            if self._keys.get(key) is q:
                del self._keys[key]

    def _abandoned(self, tp: TopicPartition) -> bool:
        return tp not in self._marks

    def _make_room(self) -> None:
        # fetching resumes once a tenth of the buffer is free, not after every finished event (which woke
        # the fetch loop per event, a visible share of CPU when a service runs with a full buffer)
        if self._buffered <= self._s.max_buffered * 0.9:
            self._room.set()

    async def _drain(self, timeout: float) -> None:
        tasks = [q.task for q in self._keys.values() if q.task is not None]
        if not tasks:
            return
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for t in pending:
            t.cancel()
        if pending:
            log.warning("shutdown_abandoned_in_flight", count=len(pending))
            await asyncio.wait(pending, timeout=5)

    # ------------------------------------------------------------------ processing

    async def _process(self, rec: ConsumerRecord) -> None:
        handler = self._routes[rec.topic]
        parent = extract_context(rec.headers)
        token = otel_context.attach(parent)
        try:
            with tracer().start_as_current_span(f"{rec.topic} process", kind=SpanKind.CONSUMER) as span:
                span.set_attribute("messaging.system", "kafka")
                span.set_attribute("messaging.destination.name", rec.topic)
                span.set_attribute("messaging.kafka.partition", rec.partition)
                span.set_attribute("messaging.kafka.offset", rec.offset)
                try:
                    event = (await open_event(self._keyring, rec.value) if self._keyring is not None
                             else parse_event(rec.value))
                except (UnknownEvent, ValueError) as exc:
                    span.set_status(Status(StatusCode.ERROR, "unparseable event"))
                    await self._dead_letter(rec, None, exc, attempts=1)
                    return
                span.set_attribute("messaging.message.id", str(event.id))
                structlog.contextvars.bind_contextvars(
                    correlation_id=str(event.correlation_id), event_id=str(event.id), event_type=event.TYPE
                )
                try:
                    await self._run_with_retries(rec, event, handler)
                finally:
                    structlog.contextvars.unbind_contextvars("correlation_id", "event_id", "event_type")
        finally:
            otel_context.detach(token)

    async def _attempt(self, event: Event, handler: Handler) -> float:
        """One try: the handler, then its outputs published (acks=all); returns when it started."""
        started = time.perf_counter()
        try:
            await self._producer.publish(await handler(event))
        except Exception:
            metrics.child(metrics.HANDLER_SECONDS, event.TYPE).observe(time.perf_counter() - started)
            raise
        return started

    async def _run_with_retries(self, rec: ConsumerRecord, event: Event, handler: Handler) -> None:
        tries = _Tries(self, event.TYPE)
        try:
            # the first try outside tenacity: nearly every event succeeds at once, and an AsyncRetrying per
            # event cost about 40 us of CPU per hop (measured); a failure continues on tenacity below
            started = await self._attempt(event, handler)
        except asyncio.CancelledError:
            raise
        except Exception as first:
            await self._retry(rec, event, handler, tries, first)
            return
        metrics.child(metrics.HANDLER_SECONDS, event.TYPE).observe(time.perf_counter() - started)
        metrics.child(metrics.EVENTS_CONSUMED, event.TYPE, "ok").inc()

    async def _retry(self, rec: ConsumerRecord, event: Event, handler: Handler, tries: _Tries,
                     first: Exception) -> None:
        """After the first try failed: the same stop rule decides, and tenacity runs the tries after it."""
        try:
            if tries.decide(first):
                raise first
            delay = self._wait.nominal(1) * (0.5 + random.random())
            tries.reported(first, delay)
            await asyncio.sleep(delay)
            async for attempt in AsyncRetrying(stop=tries.stop, wait=self._later_wait, before_sleep=tries.report,
                                               retry=retry_if_exception_type(Exception), reraise=True):
                with attempt:
                    started = await self._attempt(event, handler)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # stopped: abandoned (shutting down) or dead-lettered, never swallowed
            if tries.abandon:
                raise _Abandon from exc  # leave it uncommitted for the next owner
            metrics.EVENTS_CONSUMED.labels(type=event.TYPE, outcome="dead_lettered").inc()
            await self._dead_letter(rec, event, exc, attempts=max(tries.at_fault, 1),
                                    also=await self._compensation(event, exc))
            return
        metrics.child(metrics.HANDLER_SECONDS, event.TYPE).observe(time.perf_counter() - started)
        metrics.child(metrics.EVENTS_CONSUMED, event.TYPE, "ok").inc()

    async def _compensation(self, event: Event, exc: BaseException) -> Sequence[Event]:
        """The service's answer to giving up on ``event`` (none if it has none, or if making it fails: the dead
        letter goes out regardless)."""
        give_up = self._give_up.get(event.TYPE)
        if give_up is None:
            return ()
        try:
            return await give_up(event, exc)
        except Exception as err:  # reported; the dead letter below still keeps the event
            log.error("give_up_failed", error=f"{type(err).__name__}: {err}"[:300])
            return ()

    async def _dead_letter(
        self, rec: ConsumerRecord, event: Event | None, exc: BaseException, attempts: int,
        also: Sequence[Event] = (),
    ) -> None:
        dle = dead_letter_event(self._service, rec, event, exc, attempts)
        log.error(
            "event_dead_lettered",
            topic=rec.topic,
            partition=rec.partition,
            offset=rec.offset,
            error=f"{type(exc).__name__}: {exc}"[:500],
            attempts=attempts,
        )

        def report(rs: RetryCallState) -> None:
            log.warning("dead_letter_publish_retry", error=str(failure(rs))[:300])

        # the dead letter must be durable before the offset may move past the event: the broker being away
        # is waited out (no stop), never dropped
        async for attempt in AsyncRetrying(wait=wait_exponential(multiplier=self._s.retry_initial_s,
                                                                 max=self._s.retry_max_s),
                                           retry=retry_if_exception_type(Exception), before_sleep=report):
            with attempt:
                await self._producer.publish([dle, *also])
        metrics.DEAD_LETTERED.labels(type=event.TYPE if event else "unparseable").inc()

    # ------------------------------------------------------------------ commits

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(self._s.commit_interval_s)
            try:
                await self._commit()
            except Exception as exc:  # a failed commit is retried at the next tick; offsets only lag
                log.warning("commit_failed", error=str(exc)[:300])

    async def _commit(self, only: set[TopicPartition] | None = None) -> None:
        if self._consumer is None:
            return
        async with self._commit_lock:
            offsets: dict[TopicPartition, int] = {}
            for tp, mark in self._marks.items():
                if only is not None and tp not in only:
                    continue
                wm = mark.take_commit()
                if wm is not None:
                    offsets[tp] = wm
            if not offsets:
                return
            try:
                await self._consumer.commit(offsets)
            except Exception:
                for tp, off in offsets.items():
                    m = self._marks.get(tp)
                    if m is not None:
                        m.uncommit(off)
                raise
            for tp, off in offsets.items():
                hw = self._consumer.highwater(tp)
                if hw is not None:
                    metrics.CONSUMER_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(max(hw - off, 0))
