from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from agentbus.bus import TransientError
from agentbus.channeltypes import WebhookChannel
from agentbus.events import Chat, Event, Replay, ReplyGenerated, ReplyGeneratedData
from agentbus.events import ReplyGeneratedData as _R
from agentbus.services.egress.channels.base import OutboundAdapter, Permanent, Pushed, RateLimiter, Retryable
from agentbus.services.egress.handlers import Egress


@dataclass
class FakeLedger:
    rows: dict[uuid.UUID, str] = field(default_factory=dict)
    processed: dict[tuple[uuid.UUID, str], list[Event]] = field(default_factory=dict)

    async def already(self, event: Event) -> list[Event] | None:
        return self.processed.get((event.id, event.replay.run if event.replay else ""))

    async def record_only(self, event: Event, outputs: Sequence[Event]) -> list[Event]:
        return self.processed.setdefault((event.id, event.replay.run if event.replay else ""), list(outputs))

    async def claim(self, event: Event, target: str):  # type: ignore[no-untyped-def]
        if (event.id, "") in self.processed:
            return self.processed[(event.id, "")]
        status = self.rows.get(event.id)
        if status is None or status == "pending":
            self.rows[event.id] = "pushing"
            return "claimed"
        return "ambiguous"

    async def release(self, reply_id: uuid.UUID, attempts: int, error: str, http_status: int | None) -> None:
        self.rows[reply_id] = "pending"

    async def finish(self, event: Event, target: str, status: str, attempts: int, http_status: int | None,
                     error: str | None, pmid: str | None, outputs: Sequence[Event]) -> list[Event]:
        self.rows[event.id] = status
        self.processed[(event.id, "")] = list(outputs)
        return list(outputs)


class ScriptedAdapter(OutboundAdapter):
    type = "webhook"

    def __init__(self, script: list[BaseException | None], idempotent: bool = True) -> None:
        channel = WebhookChannel(id="acme", type="webhook", tenant="acme", agent="a",
                                 secret={"env": "X", "default": "whsec_eA=="})
        super().__init__(channel, None, None)  # type: ignore[arg-type]
        self.script = script
        self.pushes = 0
        self.idempotent = idempotent  # type: ignore[misc]

    async def push(self, reply: _R, reply_id: uuid.UUID) -> Pushed:
        self.pushes += 1
        step = self.script.pop(0) if self.script else None
        if step is not None:
            raise step
        return Pushed(200, "pm-1")


def reply(replay: Replay | None = None) -> Event:
    e = ReplyGenerated.new(
        ReplyGeneratedData(agent="a", channel="acme", channel_type="webhook", chat=Chat(id="c"), text="hi",
                           model="echo"),
        source="reasoner", tenant="acme", conversation="acme/acme/c", replay=replay,
    )
    return e


def egress(adapter: OutboundAdapter, attempts: int = 4) -> tuple[Egress, FakeLedger]:
    ledger = FakeLedger()
    return Egress({"acme": adapter}, ledger, RateLimiter(), attempts, backoff_initial_s=0.001), ledger  # type: ignore[arg-type]


async def test_retries_honour_retry_after_then_deliver_once() -> None:
    a = ScriptedAdapter([Retryable("429", 429, retry_after=0.01), Retryable("503", 503)])
    e, ledger = egress(a)
    [done] = await e.push_reply(reply())
    assert done.data.status == "delivered" and done.data.attempts == 3 and a.pushes == 3
    again = await e.push_reply(reply().model_copy(update={"id": done.data.reply_id}))
    assert again == [done] and a.pushes == 3


async def test_permanent_error_fails_without_retry() -> None:
    a = ScriptedAdapter([Permanent("chat not found", 400)])
    e, _ = egress(a)
    [done] = await e.push_reply(reply())
    assert done.data.status == "failed" and done.data.http_status == 400 and a.pushes == 1


async def test_replayed_reply_is_suppressed_and_leaves_the_live_row_alone() -> None:
    a = ScriptedAdapter([])
    e, ledger = egress(a)
    live = reply()
    await e.push_reply(live)
    [done] = await e.push_reply(live.model_copy(update={"replay": Replay(run="run-1")}))
    assert done.data.status == "suppressed" and a.pushes == 1
    assert ledger.rows[live.id] == "delivered"


async def test_interrupted_push_is_not_repeated_on_a_non_idempotent_platform() -> None:
    a = ScriptedAdapter([], idempotent=False)
    e, ledger = egress(a)
    r = reply()
    ledger.rows[r.id] = "pushing"  # a crash happened mid-push
    [done] = await e.push_reply(r)
    assert done.data.status == "failed" and a.pushes == 0
    ambiguous = ScriptedAdapter([Retryable("read timeout", ambiguous=True)], idempotent=False)
    e2, _ = egress(ambiguous)
    [done2] = await e2.push_reply(reply())
    assert done2.data.status == "failed" and ambiguous.pushes == 1


async def test_exhausted_retries_release_the_claim_and_retry_later() -> None:
    a = ScriptedAdapter([Retryable("503", 503)] * 2)
    e, ledger = egress(a, attempts=2)
    r = reply()
    with pytest.raises(TransientError):
        await e.push_reply(r)
    assert ledger.rows[r.id] == "pending"
    [done] = await e.push_reply(r)
    assert done.data.status == "delivered" and a.pushes == 3
