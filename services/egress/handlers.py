"""Egress's handler: reply.generated → one push (at most once) → delivery.completed."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from opentelemetry.trace import SpanKind

from agentbus import metrics
from agentbus.bus import TransientError
from agentbus.durable import until_recorded
from agentbus.events import DeliveryCompleted, DeliveryCompletedData, Event
from agentbus.services.egress.channels.base import OutboundAdapter, Permanent, Pushed, RateLimiter, Retryable
from agentbus.services.egress.ledger import DeliveryLedger
from agentbus.telemetry import tracer

log = structlog.get_logger("agentbus.egress")
SOURCE = "egress"


@dataclass
class Egress:
    adapters: dict[str, OutboundAdapter]
    ledger: DeliveryLedger
    limiter: RateLimiter
    attempts: int = 6
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0

    async def push_reply(self, event: Event) -> Sequence[Event]:
        d = event.data  # a redelivered reply is recognised by its claim (or its processed record)
        adapter = self.adapters.get(d.channel)
        started = time.perf_counter()
        if adapter is None:
            return await self._finish(event, "-", "failed", 0, None, f"unknown channel {d.channel!r}", None, started)
        target = adapter.target(d)
        if event.replay is not None:  # shadow run: never pushed, and the live delivery row is left alone
            return await self._finish(event, target, "suppressed", 0, None, "replayed reply: not pushed", None,
                                      started, ledger_row=False)
        claim = await self.ledger.claim(event, target)
        if isinstance(claim, list):
            return claim
        idempotent = adapter.is_idempotent(d)
        if claim == "ambiguous" and not idempotent:
            return await self._finish(
                event, target, "failed", 0, None,
                "an earlier push was interrupted and may have reached the platform; not repeated", None, started,
            )
        attempts = 0
        delay = self.backoff_initial_s
        last: Retryable | None = None
        while attempts < self.attempts:
            attempts += 1
            await self.limiter.acquire(target, adapter.rate_for(d))
            try:
                with tracer().start_as_current_span(f"push {d.channel_type}", kind=SpanKind.CLIENT) as span:
                    span.set_attribute("agentbus.channel", d.channel)
                    span.set_attribute("agentbus.attempt", attempts)
                    pushed: Pushed = await adapter.push(d, event.id)
            except Permanent as exc:
                return await self._finish(event, target, "failed", attempts, exc.http_status, str(exc), None, started)
            except Retryable as exc:
                last = exc
                if exc.ambiguous and not idempotent:
                    return await self._finish(
                        event, target, "failed", attempts, exc.http_status,
                        f"{exc}; the platform may have received it, so it is not repeated", None, started,
                    )
                wait = exc.retry_after if exc.retry_after is not None else delay * (0.5 + random.random())
                log.warning("push_retry", channel=d.channel, attempt=attempts, error=str(exc), wait_s=round(wait, 2))
                if attempts < self.attempts:
                    await asyncio.sleep(min(wait, 300.0))
                    delay = min(delay * 2, self.backoff_max_s)
                continue
            return await self._finish(
                event, target, "delivered", attempts, pushed.http_status, None, pushed.platform_message_id, started
            )
        assert last is not None
        await until_recorded(lambda: self.ledger.release(event.id, attempts, str(last), last.http_status),
                             what="delivery release")
        metrics.DELIVERIES.labels(channel=d.channel_type, outcome="retry_later").inc()
        raise TransientError(f"push not accepted after {attempts} attempts: {last}")

    async def _finish(
        self, event: Event, target: str, status: str, attempts: int, http_status: int | None, error: str | None,
        platform_message_id: str | None, started: float, ledger_row: bool = True,
    ) -> list[Event]:
        d = event.data
        out = event.follow(
            DeliveryCompleted,
            DeliveryCompletedData(
                reply_id=event.id,
                channel=d.channel,
                channel_type=d.channel_type,
                status=status,  # type: ignore[arg-type]
                attempts=attempts,
                http_status=http_status,
                error=error,
                platform_message_id=platform_message_id,
                latency_ms=(time.perf_counter() - started) * 1000,
            ),
            source=SOURCE,
            step="delivery",
        )
        metrics.child(metrics.DELIVERIES, d.channel_type, status).inc()
        log.info("reply_pushed" if status == "delivered" else "reply_not_pushed", channel=d.channel, status=status,
                 attempts=attempts, error=error)
        if not ledger_row:
            return await until_recorded(lambda: self.ledger.record_only(event, [out]), what="delivery")
        # the push (if any) has happened: record it, retrying only this write, so a database hiccup here
        # never makes the handler push again
        return await until_recorded(
            lambda: self.ledger.finish(event, target, status, attempts, http_status, error, platform_message_id, [out]),
            what="delivery",
        )
