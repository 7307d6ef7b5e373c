from __future__ import annotations

import pytest
from tenacity import AsyncRetrying, RetryCallState

from agentbus.bus import TransientError
from agentbus.events import Chat, Replay, ReplyGenerated, ReplyGeneratedData
from agentbus.services.egress.handlers import Egress, PushWait
from agentbus.services.egress.ports import Permanent, Retryable
from tests.unit.fakes_egress import FakeDeliveryLedger, FakeOutbound, FakeRateLimiter


def reply(replay: Replay | None = None) -> ReplyGenerated:
    e = ReplyGenerated.new(
        ReplyGeneratedData(agent="a", channel="acme", channel_type="webhook", chat=Chat(id="c"), text="hi",
                           model="echo"),
        source="reasoner", tenant="acme", conversation="acme/acme/c", replay=replay,
    )
    return e


def egress(adapter: FakeOutbound, attempts: int = 4) -> tuple[Egress, FakeDeliveryLedger]:
    ledger = FakeDeliveryLedger()
    return Egress({"acme": adapter}, ledger, FakeRateLimiter(), attempts, backoff_initial_s=0.001), ledger


async def test_retries_honour_retry_after_then_deliver_once() -> None:
    a = FakeOutbound([Retryable("429", 429, retry_after=0.01), Retryable("503", 503)])
    e, ledger = egress(a)
    [done] = await e.push_reply(reply())
    assert done.data.status == "delivered" and done.data.attempts == 3 and len(a.pushes) == 3
    again = await e.push_reply(reply().model_copy(update={"id": done.data.reply_id}))
    assert again == [done] and len(a.pushes) == 3


async def test_permanent_error_fails_without_retry() -> None:
    a = FakeOutbound([Permanent("chat not found", 400)])
    e, _ = egress(a)
    [done] = await e.push_reply(reply())
    assert done.data.status == "failed" and done.data.http_status == 400 and len(a.pushes) == 1


async def test_replayed_reply_is_suppressed_and_leaves_the_live_row_alone() -> None:
    a = FakeOutbound([])
    e, ledger = egress(a)
    live = reply()
    await e.push_reply(live)
    [done] = await e.push_reply(live.model_copy(update={"replay": Replay(run="run-1")}))
    assert done.data.status == "suppressed" and len(a.pushes) == 1
    assert ledger.rows[live.id] == "delivered"


async def test_interrupted_push_is_not_repeated_on_a_non_idempotent_platform() -> None:
    a = FakeOutbound([], idempotent=False)
    e, ledger = egress(a)
    r = reply()
    ledger.rows[r.id] = "pushing"  # a crash happened mid-push
    [done] = await e.push_reply(r)
    assert done.data.status == "failed" and len(a.pushes) == 0
    ambiguous = FakeOutbound([Retryable("read timeout", ambiguous=True)], idempotent=False)
    e2, _ = egress(ambiguous)
    [done2] = await e2.push_reply(reply())
    assert done2.data.status == "failed" and len(ambiguous.pushes) == 1


async def test_exhausted_retries_release_the_claim_and_retry_later() -> None:
    a = FakeOutbound([Retryable("503", 503)] * 2)
    e, ledger = egress(a, attempts=2)
    r = reply()
    with pytest.raises(TransientError):
        await e.push_reply(r)
    assert ledger.rows[r.id] == "pending"
    [done] = await e.push_reply(r)
    assert done.data.status == "delivered" and len(a.pushes) == 3


async def test_delivery_completed_counts_the_attempts_of_every_round() -> None:
    # 500 eight times, then 200: the first round (6 attempts) releases the reply, the consumer's retry
    # delivers it after 3 more; the event reports all 9, as the ledger counts them
    a = FakeOutbound([Retryable("HTTP 500", 500)] * 8)
    e, ledger = egress(a, attempts=6)
    r = reply()
    with pytest.raises(TransientError):
        await e.push_reply(r)
    assert ledger.rows[r.id] == "pending" and ledger.attempts[r.id] == 6
    [done] = await e.push_reply(r)
    assert done.data.status == "delivered" and len(a.pushes) == 9
    assert done.data.attempts == ledger.attempts[r.id] == 9


async def test_a_failure_after_a_released_round_counts_its_attempts_too() -> None:
    a = FakeOutbound([Retryable("HTTP 503", 503)] * 2 + [Permanent("chat not found", 400)])
    e, ledger = egress(a, attempts=2)
    r = reply()
    with pytest.raises(TransientError):
        await e.push_reply(r)
    [done] = await e.push_reply(r)
    assert done.data.status == "failed" and done.data.attempts == ledger.attempts[r.id] == 3


async def test_the_limiter_is_asked_before_every_push() -> None:
    journal: list[str] = []
    a = FakeOutbound([Retryable("HTTP 503", 503)] * 2, rate=20, journal=journal)
    limiter = FakeRateLimiter(journal=journal)
    e = Egress({"acme": a}, FakeDeliveryLedger(), limiter, 4, backoff_initial_s=0.001)
    [done] = await e.push_reply(reply())
    assert done.data.attempts == 3
    assert journal == ["acquire", "push"] * 3 and limiter.acquired == [("acme:c", 20)] * 3


async def test_an_ambiguous_failure_is_repeated_only_where_the_platform_deduplicates() -> None:
    safe = FakeOutbound([Retryable("read timeout", ambiguous=True)], idempotent=True)
    [done] = await egress(safe)[0].push_reply(reply())
    assert done.data.status == "delivered" and done.data.attempts == 2 and len(safe.pushes) == 2
    unsafe = FakeOutbound([Retryable("HTTP 503", 503), Retryable("read timeout", ambiguous=True)],
                          idempotent=False)
    e, ledger = egress(unsafe)
    r = reply()
    [failed] = await e.push_reply(r)
    assert failed.data.status == "failed" and failed.data.attempts == 2 and len(unsafe.pushes) == 2
    assert "not repeated" in (failed.data.error or "") and ledger.rows[r.id] == "failed"


def wait_after(exc: BaseException, attempt: int, initial: float = 0.5, cap: float = 30.0) -> float:
    state = RetryCallState(AsyncRetrying(), None, (), {})
    state.attempt_number = attempt
    state.set_exception((type(exc), exc, None))
    return PushWait(initial, cap)(state)


def test_waits_double_with_jitter_up_to_the_cap_and_honour_retry_after() -> None:
    for attempt, nominal in ((1, 0.5), (2, 1.0), (3, 2.0), (7, 30.0), (20, 30.0)):
        waits = [wait_after(Retryable("HTTP 503", 503), attempt) for _ in range(200)]
        assert all(0.5 * nominal <= w < 1.5 * nominal for w in waits), (attempt, min(waits), max(waits))
        assert max(waits) - min(waits) > 0.5 * nominal  # jittered, not fixed
    assert wait_after(Retryable("429", 429, retry_after=7.0), 1) == 7.0
    assert wait_after(Retryable("429", 429, retry_after=0.0), 5) == 0.0
    assert wait_after(Retryable("429", 429, retry_after=3600.0), 1) == 300.0  # capped at 5 minutes
