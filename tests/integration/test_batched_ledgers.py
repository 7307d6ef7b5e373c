"""The reasoner's and egress's ledgers against the real PostgreSQL, with events handled together: one
statement answers many events, each gets its own answer, and a redelivered event its first outcome."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from psycopg_pool import AsyncConnectionPool

from agentbus.events import (
    Chat,
    ContextAssembled,
    ContextAssembledData,
    DeliveryCompleted,
    DeliveryCompletedData,
    Event,
    ReplyGenerated,
    ReplyGeneratedData,
    Turn,
    utcnow,
)
from agentbus.services.egress.ledger import PgDeliveryLedger
from agentbus.services.egress.ports import Claim, Outcome
from agentbus.services.reasoner.ledger import Ledger
from agentbus.services.reasoner.ports import Completion, Lookup, Record, StepRecord
from tests.support.db import service_pool
from tests.support.platform import Infra

pytestmark = pytest.mark.integration


@pytest.fixture
async def reasoner_pool(infra: Infra) -> AsyncIterator[AsyncConnectionPool]:
    async with service_pool(infra.database_url, "reasoner") as p:
        yield p


@pytest.fixture
async def egress_pool(infra: Infra) -> AsyncIterator[AsyncConnectionPool]:
    async with service_pool(infra.database_url, "egress") as p:
        yield p


def counted(obj: object, name: str) -> list[int]:
    """Record the size of every batch the named method is given."""
    sizes: list[int] = []
    inner: Callable[[list[object]], Awaitable[object]] = getattr(obj, name)

    async def wrapper(items: list[object]) -> object:
        sizes.append(len(items))
        return await inner(items)

    coalescer = next(v for v in vars(obj).values() if getattr(v, "_many", None) == inner)
    coalescer._many = wrapper
    return sizes


def context(chat: str) -> ContextAssembled:
    now = utcnow()
    return ContextAssembled.new(
        ContextAssembledData(agent="assistant", channel="acme", channel_type="webhook", chat=Chat(id=chat),
                             trigger="message", input=Turn(role="user", text=f"hi {chat}", at=now)),
        source="memory", tenant="acme", conversation=f"acme/acme/{chat}",
    )


def reply_for(ctx: Event, text: str) -> ReplyGenerated:
    return ctx.follow(  # type: ignore[return-value]
        ReplyGenerated,
        ReplyGeneratedData(agent="assistant", channel="acme", channel_type="webhook", chat=Chat(id="c"),
                           text=text, model="m"),
        source="reasoner", step="reply",
    )


def completion(text: str) -> Completion:
    return Completion(text=text, model="m", provider="p", prompt_tokens=3, completion_tokens=4, finish_reason="stop",
                      latency_ms=12.5, attempts=2, models_tried=("first", "m"))


def record(e: ContextAssembled, request: list[dict[str, str]], c: Completion, outputs: list[Event],
           store: bool = True) -> Record:
    return Record(event=e, agent="assistant", request=request, completion=c, outputs=outputs, store_inference=store)


async def test_reasoner_records_and_lookups_of_concurrent_events(reasoner_pool: AsyncConnectionPool) -> None:
    ledger = Ledger(reasoner_pool)
    record_sizes = counted(ledger, "_record_many")
    lookup_sizes = counted(ledger, "_lookup_many")
    events = [context(f"c{i}") for i in range(5)]
    assert await asyncio.gather(*(ledger.lookup(e) for e in events)) == [Lookup(None, None)] * 5
    outs = [[reply_for(e, f"answer {i}")] for i, e in enumerate(events)]
    recorded = await asyncio.gather(*(
        ledger.record(record(e, [{"role": "user", "content": f"q{i}"}], completion(f"answer {i}"), outs[i],
                             store=(i != 4)))
        for i, e in enumerate(events)
    ))
    assert recorded == outs
    assert record_sizes == [5] and lookup_sizes == [5]
    found = await asyncio.gather(*(ledger.lookup(e) for e in events))
    for i, (previous, c) in enumerate((f.outputs, f.inference) for f in found):
        assert previous == outs[i]
        if i == 4:
            assert c is None  # recorded without an inference (a refusal, say)
        else:
            assert c == completion(f"answer {i}")  # models_tried survives the batch as an array
    # a redelivery handled with a new event: the first outputs stand, the new one is recorded
    new = context("c9")
    again = await asyncio.gather(
        ledger.record(record(events[0], [], completion("other"), [reply_for(events[0], "x")])),
        ledger.record(record(new, [], completion("new"), [reply_for(new, "new")])),
    )
    assert again[0] == outs[0] and again[1][0].data.text == "new"
    assert (await ledger.lookup(events[0])).inference == completion("answer 0"), "the first inference stands"
    await ledger.aclose()


async def test_tool_loop_steps_come_back_with_the_lookup_and_the_first_record_stands(
    reasoner_pool: AsyncConnectionPool,
) -> None:
    ledger = Ledger(reasoner_pool)
    e, other = context("steps"), context("no-steps")
    model = StepRecord(n=1, call_id="", kind="llm", data={"text": "", "tool_calls": [{"id": "c1"}]})
    tool = StepRecord(n=1, call_id="c1", kind="tool", data={"tool": "now", "content": "09:00", "commands": []})
    await ledger.record_step(e, tool)
    await ledger.record_step(e, model)
    await ledger.record_step(e, StepRecord(n=1, call_id="c1", kind="tool", data={"content": "a second run"}))
    found, none = await asyncio.gather(ledger.lookup(e), ledger.lookup(other))
    assert found.steps == (model, tool), "ordered by step, the first record of a step kept"
    assert none.steps == () and none.outputs is None
    await ledger.aclose()


def delivered(reply: Event, status: str) -> DeliveryCompleted:
    return reply.follow(  # type: ignore[return-value]
        DeliveryCompleted,
        DeliveryCompletedData(reply_id=reply.id, channel="acme", channel_type="webhook", status=status,
                              attempts=1, latency_ms=1.0),
        source="egress", step="delivery",
    )


async def test_egress_claims_and_outcomes_of_concurrent_replies(egress_pool: AsyncConnectionPool) -> None:
    ledger = PgDeliveryLedger(egress_pool)
    claim_sizes = counted(ledger, "_claim_many")
    finish_sizes = counted(ledger, "_finish_many")
    replies = [reply_for(context(f"c{i}"), f"r{i}") for i in range(4)]
    claims = await asyncio.gather(*(ledger.claim(r, f"acme:c{i}") for i, r in enumerate(replies)))
    assert claims == [Claim("claimed")] * 4
    # claimed again while the first claim stands (a crash mid-push): ambiguous, never pushed twice
    assert await asyncio.gather(*(ledger.claim(r, "t") for r in replies[:2])) == [Claim("ambiguous")] * 2
    outs = [[delivered(r, "delivered")] for r in replies]
    done = await asyncio.gather(*(
        ledger.finish(r, f"acme:c{i}", Outcome("delivered", 1, 200, None, f"pm{i}"), outs[i])
        for i, r in enumerate(replies)
    ))
    assert done == outs
    assert claim_sizes == [4, 2] and finish_sizes == [4]
    # finished replies are recognised by their processed record, and a late outcome changes nothing
    assert await asyncio.gather(*(ledger.claim(r, "t") for r in replies[:2])) == [outs[0], outs[1]]
    late = await asyncio.gather(*(
        ledger.finish(r, "t", Outcome("failed", 1, 500, "late"), [delivered(r, "failed")]) for r in replies[:2]
    ))
    assert late == [outs[0], outs[1]]
    async with egress_pool.connection() as conn:
        rows = await (await conn.execute(
            "SELECT reply_id, status, platform_message_id, attempts FROM deliveries ORDER BY platform_message_id"
        )).fetchall()
    assert [(r[1], r[2], r[3]) for r in rows] == [("delivered", f"pm{i}", 1) for i in range(4)]
    assert {r[0] for r in rows} == {r.id for r in replies}
    await ledger.aclose()
