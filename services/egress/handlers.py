"""Egress's handler: reply.generated → one push (at most once) → delivery.completed."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog
from opentelemetry.trace import SpanKind
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from agentbus import metrics
from agentbus.bus import TransientError
from agentbus.durable import until_recorded
from agentbus.events import DeliveryCompleted, DeliveryCompletedData, Event, ReplyGenerated
from agentbus.ids import Step
from agentbus.replaying import effects_of
from agentbus.retrying import failure, jittered
from agentbus.services.egress.ports import (
    Claim,
    DeliveryLedger,
    FinalEdit,
    Outbound,
    Outcome,
    Permanent,
    Pushed,
    RateLimiter,
    Retryable,
)
from agentbus.telemetry import tracer

log = structlog.get_logger("agentbus.egress")
SOURCE = "egress"
RETRY_AFTER_CAP_S = 300.0  # a platform asking for longer is retried by the consumer, after a release


class PushWait(jittered):
    """The platform's Retry-After when it gives one, else the jittered doubling wait; never over 5 minutes."""

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = failure(retry_state)
        if isinstance(exc, Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, RETRY_AFTER_CAP_S)
        return min(super().__call__(retry_state), RETRY_AFTER_CAP_S)


@dataclass
class Egress:
    adapters: Mapping[str, Outbound]
    ledger: DeliveryLedger
    limiter: RateLimiter
    attempts: int = 6
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    progress: FinalEdit | None = None  # a reply whose answer was streamed edits that message

    async def push_reply(self, event: ReplyGenerated) -> Sequence[Event]:
        d = event.data  # a redelivered reply is recognised by its claim (or its processed record)
        adapter = self.adapters.get(d.channel)
        started = time.perf_counter()
        if adapter is None:
            return await self._finish(event, "-", Outcome("failed", error=f"unknown channel {d.channel!r}"), started)
        target = adapter.target(d)
        effects = effects_of(event)
        if not effects.push:  # a shadow run: never pushed, and the live delivery row is left alone
            return await self._finish(event, target, Outcome("suppressed", error="replayed reply: not pushed"),
                                      started, remember=effects.remember)
        claim = await self.ledger.claim(event, target)
        if not isinstance(claim, Claim):
            return claim
        idempotent = adapter.is_idempotent(d)
        if claim.state == "ambiguous" and not idempotent:
            error = "an earlier push was interrupted and may have reached the platform; not repeated"
            return await self._finish(event, target, Outcome("failed", error=error), started, claim)
        attempts = 0

        def worth_repeating(exc: BaseException) -> bool:
            # a push the platform may have received is repeated only where it de-duplicates
            return isinstance(exc, Retryable) and (idempotent or not exc.ambiguous)

        def report(rs: RetryCallState) -> None:
            log.warning("push_retry", channel=d.channel, attempt=attempts, error=str(failure(rs)),
                        wait_s=round(rs.upcoming_sleep, 2))

        async def once() -> Pushed:
            nonlocal attempts
            attempts += 1
            await self.limiter.acquire(target, adapter.rate_for(d))
            return await self._push(adapter, event, attempts)

        try:
            try:  # the first try outside tenacity: an AsyncRetrying per push cost ~40 us of CPU (measured)
                pushed = await once()
            except Retryable as first:
                if not worth_repeating(first) or self.attempts <= 1:
                    raise
                wait = min(first.retry_after if first.retry_after is not None
                           else self.backoff_initial_s * (0.5 + random.random()), RETRY_AFTER_CAP_S)
                log.warning("push_retry", channel=d.channel, attempt=attempts, error=str(first), wait_s=round(wait, 2))
                await asyncio.sleep(wait)
                async for attempt in AsyncRetrying(  # tries 2..attempts, their waits doubling on from the first's
                    stop=stop_after_attempt(self.attempts - 1),
                    wait=PushWait(self.backoff_initial_s * 2, self.backoff_max_s),
                    retry=retry_if_exception(worth_repeating), before_sleep=report, reraise=True,
                ):
                    with attempt:
                        pushed = await once()
        except Permanent as exc:
            return await self._finish(event, target, Outcome("failed", attempts, exc.http_status, str(exc)),
                                      started, claim)
        except Retryable as exc:
            if exc.ambiguous and not idempotent:
                error = f"{exc}; the platform may have received it, so it is not repeated"
                return await self._finish(event, target, Outcome("failed", attempts, exc.http_status, error),
                                          started, claim)
            last = exc
            await until_recorded(lambda: self.ledger.release(event.id, attempts, str(last), last.http_status),
                                 what="delivery release")
            metrics.DELIVERIES.labels(channel=d.channel_type, outcome="retry_later").inc()
            raise TransientError(f"push not accepted after {attempts} attempts: {exc}") from exc
        outcome = Outcome("delivered", attempts, pushed.http_status, platform_message_id=pushed.platform_message_id)
        return await self._finish(event, target, outcome, started, claim)

    async def _push(self, adapter: Outbound, event: ReplyGenerated, attempt: int) -> Pushed:
        d = event.data
        with tracer().start_as_current_span(f"push {d.channel_type}", kind=SpanKind.CLIENT) as span:
            span.set_attribute("agentbus.channel", d.channel)
            span.set_attribute("agentbus.attempt", attempt)
            if self.progress is not None and (edited := await self.progress.final(adapter, d, event.id)) is not None:
                return edited
            return await adapter.push(d, event.id)

    async def _finish(
        self, event: ReplyGenerated, target: str, outcome: Outcome, started: float, claim: Claim | None = None,
        remember: bool = True,
    ) -> list[Event]:
        """delivery.completed for this outcome, recorded; its attempts count the earlier rounds' too."""
        d = event.data
        attempts = outcome.attempts + (claim.previous_attempts if claim else 0)
        out = event.follow(
            DeliveryCompleted,
            DeliveryCompletedData(
                reply_id=event.id,
                channel=d.channel,
                channel_type=d.channel_type,
                status=outcome.status,
                attempts=attempts,
                http_status=outcome.http_status,
                error=outcome.error,
                platform_message_id=outcome.platform_message_id,
                latency_ms=(time.perf_counter() - started) * 1000,
            ),
            source=SOURCE,
            step=Step.DELIVERY,
        )
        metrics.child(metrics.DELIVERIES, d.channel_type, outcome.status).inc()
        log.info("reply_pushed" if outcome.status == "delivered" else "reply_not_pushed", channel=d.channel,
                 status=outcome.status, attempts=attempts, error=outcome.error)
        if not remember:
            return await until_recorded(lambda: self.ledger.record_only(event, [out]), what="delivery")
        # the push (if any) has happened: record it, retrying only this write, so a database hiccup here
        # never makes the handler push again
        return await until_recorded(lambda: self.ledger.finish(event, target, outcome, [out]), what="delivery")
