"""A small chaos run in the test suite: 300 webhook messages over 30 conversations and 60 more over a Telegram
long connection (getUpdates) through the whole platform while ingress (holding that connection) and the
reasoner are SIGKILLed and restarted, the LLM answers 500 for a while and the channel answers 429 for a while
(why not egress: see ``chaos.run.slice_plan``).

The full run (every service killed in turn, a frozen broker, a PostgreSQL restart, LLM timeouts) is
``make chaos``; this slice keeps the same accounting within the suite's time.
"""

from __future__ import annotations

import pytest

from chaos.report import render
from chaos.run import Options, run_chaos
from tests.support.platform import Infra

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]


async def test_nothing_lost_duplicated_or_reordered_under_faults(infra: Infra) -> None:
    r = await run_chaos(infra, Options(messages=300, conversations=30, plan="slice", drain_timeout_s=120,
                                       longconn_messages=60, longconn_conversations=10))
    render(r)
    assert [f.name for f in r.faults if f.error] == []
    assert r.accepted == 300, "every message was eventually accepted (retried with its webhook-id)"
    assert r.lost == 0, r.lost_examples
    assert r.duplicated_pushes == 0, r.duplicate_examples
    assert r.duplicated_replies_in_chat == 0
    assert r.out_of_order == 0, r.out_of_order_examples
    assert r.wrong_replies == 0 and r.unexpected_pushes == 0
    assert r.delivered + r.dead_lettered == r.accepted
    assert r.tool_messages > 50 and r.repeated_tool_effects == 0, "a side-effecting tool acts once per decision"
    # recovery is measured with messages sent after the fault; on a busy machine the last fault may end
    # too close to the end of the load for that, so only faults that ended well before it must show one
    measurable = [f for f in r.faults if f.started_s is not None and f.duration_s is not None
                  and f.started_s + f.duration_s < r.load_s - 5]
    assert len(measurable) >= 2 and all(f.recovery_s is not None for f in measurable), r.faults
    assert r.throttled_pushes > 0 and r.llm_requests_failed > 0, "the faults were really injected"
    lc = r.long_connection
    assert lc is not None and lc.messages == 60
    assert lc.lost == 0, lc.lost_examples
    assert lc.duplicated == 0, lc.duplicate_examples
    assert lc.out_of_order == 0 and lc.wrong == 0
    assert lc.confirmed == 60, "every update was confirmed by a later poll's offset"
    assert "SIGKILL ingress" in [f.name for f in r.faults if f.error is None]
