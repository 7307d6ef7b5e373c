"""Found by the chaos run (PostgreSQL restart): an outcome that was not recorded used to be produced again.

In both handlers the external call (the LLM, the push) happens before the ledger write that records it. When
that write failed on a transient database error, the consumer retried the whole handler, and the retry could
not know the call was made: a second LLM call, a second push. Now that write alone is retried with the result
kept in memory. Minimal reproductions with fakes; the ledger write fails once, exactly as during the restart.
"""

from __future__ import annotations

import psycopg

from agentbus.config import parse_config
from agentbus.events import (
    Chat,
    ContextAssembled,
    ContextAssembledData,
    ReplyGenerated,
    ReplyGeneratedData,
    Turn,
    utcnow,
)
from agentbus.services.egress.handlers import Egress
from agentbus.services.reasoner.handlers import Reasoner
from agentbus.settings import Settings
from tests.support.platform import base_config
from tests.unit.fakes_egress import FakeDeliveryLedger, FakeOutbound, FakeRateLimiter
from tests.unit.fakes_reasoner import FakeInferenceLedger, ScriptedLLM

OUTAGE = psycopg.OperationalError("terminating connection due to administrator command")


async def test_llm_is_not_called_again_when_recording_the_inference_failed() -> None:
    # keeps inferences like the real ledger; the first record fails as the database goes away
    llm, ledger = ScriptedLLM(), FakeInferenceLedger(fail_records=[OUTAGE])
    r = Reasoner(parse_config(base_config()), Settings(), ledger, llm)
    e = ContextAssembled.new(
        ContextAssembledData(agent="assistant", channel="acme", channel_type="webhook", chat=Chat(id="c"),
                             trigger="message", input=Turn(role="user", text="hello", at=utcnow())),
        source="memory", tenant="acme", conversation="acme/acme/c",
    )
    await r.answer(e)  # the failed write is retried on its own, with the answer kept
    await r.answer(e)  # a redelivery finds it recorded
    assert llm.calls == 1 and not ledger.fail_records


async def test_reply_is_not_pushed_again_when_recording_the_delivery_failed() -> None:
    adapter, ledger = FakeOutbound(), FakeDeliveryLedger(finish_failure=OUTAGE)  # the first finish fails
    egress = Egress({"acme": adapter}, ledger, FakeRateLimiter(), 3, backoff_initial_s=0.001)
    reply = ReplyGenerated.new(
        ReplyGeneratedData(agent="a", channel="acme", channel_type="webhook", chat=Chat(id="c"), text="hi",
                           model="m"),
        source="reasoner", tenant="acme", conversation="acme/acme/c",
    )
    [done] = await egress.push_reply(reply)  # the failed write is retried on its own
    assert done.data.status == "delivered" and ledger.finish_failure is None
    assert await egress.push_reply(reply) == [done]
    assert len(adapter.pushes) == 1
