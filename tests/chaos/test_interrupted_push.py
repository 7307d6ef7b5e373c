"""A push interrupted by a SIGKILL of egress, between the HTTP call and the ledger update.

The delivery ledger knows only that the push was claimed, not whether the platform got it. For a channel
with an idempotency key (the generic webhook: ``webhook-id`` = reply id) egress pushes again with the same
key, so the raw request count shows the push twice while a receiver that de-duplicates by ``webhook-id``
(as Standard Webhooks asks) shows it once. This pins that behaviour down, so that the chaos run's
"duplicated pushes" count can be read correctly.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import httpx
import pytest

from agentbus.cli.tools import signed_request
from chaos.fakes import ChaosLLM, ChaosSink
from chaos.run import chaos_config
from tests.support.platform import Infra, run_platform, secret_for

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(180)]


async def test_sigkill_during_a_push_repeats_it_with_the_same_webhook_id(infra: Infra) -> None:
    llm = await ChaosLLM().start()
    sink = await ChaosSink({"acme": secret_for("acme"), "globex": secret_for("globex")},
                           delay_s=(3.0, 3.0)).start()  # the platform takes 3 s to answer each push
    try:
        async with run_platform(infra, chaos_config(sink.url, llm.base_url, 5.0),
                                services=("ingress", "memory", "reasoner", "egress")) as p:
            run = uuid.uuid4().hex[:6]
            ids = []
            async with httpx.AsyncClient() as c:
                for i in range(5):
                    webhook_id = f"msg_{run}_{i}"
                    body, headers = signed_request(secret_for("acme"), {
                        "conversation": f"ip-{run}-{i}", "sender": {"id": "u"}, "text": f"hello {run} {i}"},
                        webhook_id)
                    r = await c.post(f"{p.ingress_url}/v1/webhooks/acme", content=body, headers=headers)
                    assert r.status_code == 202
                    ids.append(webhook_id)
            async with asyncio.timeout(60):  # every push has reached the platform, none is answered yet
                while len({x.in_reply_to for x in sink.pushes}) < 5:
                    await asyncio.sleep(0.05)
            await p.stack.procs["egress"].kill()
            killed_at = time.monotonic()
            await p.stack.start_service("egress")
            async with asyncio.timeout(90):
                while len([x for x in sink.pushes if x.at > killed_at]) < 5:
                    await asyncio.sleep(0.1)
            await asyncio.sleep(4)  # answers of the repeated pushes, and anything else that would follow
    finally:
        await llm.stop()
        await sink.stop()

    per_reply = Counter(x.webhook_id for x in sink.pushes)
    assert {x.in_reply_to for x in sink.pushes} == set(ids)
    assert len(per_reply) == 5, "one webhook-id per reply, the repeat included"
    assert sorted(per_reply.values()) == [2] * 5, "each interrupted push was repeated exactly once"
    assert all(x.status == 200 for x in sink.pushes)
