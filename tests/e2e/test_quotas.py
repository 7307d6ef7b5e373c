"""Tenant quotas through the running platform.

Messages per minute: two ingress replicas share acme's allowance; the message over it is a 429 with
Retry-After and is not published, a platform retry of an accepted message is still a duplicate, and globex
(no quota) is never refused. LLM tokens per day: once acme's day is used up, the agent answers with the
budget text and the model is not called; both are in the services' metrics."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from agentbus.cli.tools import signed_request
from agentbus.eventlog import read
from agentbus.settings import Settings
from agentbus.topics import topics_of_type
from tests.support.keys import platform_keyring
from tests.support.platform import Infra, base_config, run_platform, secret_for
from tests.support.servers import FakeLLM, WebhookSink

pytestmark = pytest.mark.e2e


def metric(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{"):
            got = ",".join(sorted(line[line.index("{") + 1:line.index("}")].split(",")))
            if got == want:
                return float(line.rsplit(" ", 1)[1])
    return None


async def webhook(http: httpx.AsyncClient, url: str, tenant: str, text: str, msg_id: str) -> httpx.Response:
    body, headers = signed_request(secret_for(tenant), {"conversation": f"c-{text}", "sender": {"id": "u"},
                                                        "text": text}, msg_id=msg_id)
    return await http.post(f"{url}/v1/webhooks/{tenant}", content=body, headers=headers)


async def test_messages_over_the_tenants_minute_are_429_and_not_published(infra: Infra) -> None:
    config: dict[str, Any] = base_config()
    config["tenants"][0]["quotas"] = {"messages_per_minute": 3}
    async with run_platform(infra, config, services=("ingress",)) as p:
        await p.stack.start_replica("ingress", "1")
        urls = [p.ingress_url, f"http://127.0.0.1:{p.stack.replica_ports['ingress-1']}"]
        run = uuid.uuid4().hex[:6]
        async with httpx.AsyncClient(timeout=15) as http:
            accepted = [await webhook(http, urls[n % 2], "acme", f"m{n}-{run}", f"msg_{run}_{n}") for n in range(3)]
            assert [r.status_code for r in accepted] == [202, 202, 202]
            over = [await webhook(http, urls[n % 2], "acme", f"m{n}-{run}", f"msg_{run}_{n}") for n in (3, 4)]
            assert [r.status_code for r in over] == [429, 429]
            assert all(1 <= int(r.headers["retry-after"]) <= 60 for r in over)
            assert "messages_per_minute" in over[0].json()["error"]
            # the platform retries the first message: still a duplicate, not a refusal
            retry = await webhook(http, urls[1], "acme", f"m0-{run}", f"msg_{run}_0")
            assert retry.status_code == 202 and retry.headers["x-agentbus-outcome"] == "duplicate"
            # another tenant has no quota
            assert [(await webhook(http, urls[0], "globex", f"g{n}-{run}", f"msg_g{run}_{n}")).status_code
                    for n in range(4)] == [202] * 4
            counted = [metric((await http.get(f"{u}/metrics")).text, "agentbus_quota_refused_total",
                              tenant="acme", quota="messages_per_minute") for u in urls]
        assert sum(c or 0 for c in counted) == 2
        s = Settings(kafka_bootstrap_servers=infra.bootstrap, topic_prefix=p.prefix)
        async with platform_keyring(p) as keys:
            texts = sorted(lg.event.data.text for lg in await read(s, topics_of_type(p.prefix, "message.received"),
                                                                   keyring=keys) if lg.event.tenant == "acme")
        assert texts == [f"m{n}-{run}" for n in range(3)]


async def test_once_the_days_tokens_are_used_up_the_agent_says_so_without_the_model(
        infra: Infra, llm: FakeLLM, sink: WebhookSink) -> None:
    assert sink.server is not None
    config: dict[str, Any] = base_config(sink.server.url, llm.base_url)
    text = "The budget is used up for today, sorry."
    config["tenants"][0]["quotas"] = {"llm_tokens_per_day": 5, "budget_used_up_text": text}
    async with run_platform(infra, config, services=("ingress", "memory", "reasoner", "egress")) as p:
        run = uuid.uuid4().hex[:6]
        async with httpx.AsyncClient(timeout=15) as http:
            r = await webhook(http, p.ingress_url, "acme", f"first-{run}", f"msg_{run}_1")
            assert r.status_code == 202
            [first] = await sink.wait_for(lambda m: m["conversation"] == f"c-first-{run}")
            assert first["text"] == f"answer: first-{run}"  # the model answered, and used more than 5 tokens
            calls = len(llm.calls)
            r = await webhook(http, p.ingress_url, "acme", f"second-{run}", f"msg_{run}_2")
            assert r.status_code == 202
            [second] = await sink.wait_for(lambda m: m["conversation"] == f"c-second-{run}")
            assert second["text"] == text and len(llm.calls) == calls and not llm.calls_with(f"second-{run}")
            # globex has no budget: the model answers it
            r = await webhook(http, p.ingress_url, "globex", f"third-{run}", f"msg_{run}_3")
            [third] = await sink.wait_for(lambda m: m["conversation"] == f"c-third-{run}")
            assert third["text"] == f"answer: third-{run}"
            page = (await http.get(f"{p.url_of('reasoner')}/metrics")).text
        assert metric(page, "agentbus_quota_refused_total", tenant="acme", quota="llm_tokens_per_day") == 1
        assert (metric(page, "agentbus_quota_llm_tokens_used", tenant="acme") or 0) > 5
        assert metric(page, "agentbus_quota_limit", tenant="acme", quota="llm_tokens_per_day") == 5
