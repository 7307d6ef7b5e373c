"""Dead letters and replay runs through the operator API of the running platform: the LLM refuses a request,
the reasoner dead-letters it, a viewer lists it, an operator redrives it (once in effect, however often), and
a replay of one message started over HTTP is selected and republished by ingress, then reported from the log."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from agentbus.cli.tools import signed_request
from tests.e2e.test_operator_api import cli, until
from tests.support.platform import Infra, Platform, base_config, run_platform, secret_for
from tests.support.servers import FakeLLM, WebhookSink

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def platform(infra: Infra, llm: FakeLLM, sink: WebhookSink) -> AsyncIterator[Platform]:
    assert sink.server is not None
    async with run_platform(infra, base_config(sink.server.url, llm.base_url),
                            services=("ingress", "memory", "reasoner", "egress")) as p:
        yield p


async def token(infra: Infra, p: Platform, tenant: str, role: str) -> dict[str, str]:
    code, out, err = await cli(infra, p, "tokens", "create", "--name", f"{tenant}-{role}", "--tenant", tenant,
                               "--role", role)
    assert code == 0, err
    return {"authorization": f"Bearer {out.strip()}"}


async def send(p: Platform, conversation: str, text: str) -> str:
    body, headers = signed_request(secret_for("acme"), {"conversation": conversation, "sender": {"id": "u"},
                                                        "text": text})
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{p.ingress_url}/v1/webhooks/acme", content=body, headers=headers)
    assert r.status_code == 202, r.text
    return r.headers["x-agentbus-event-id"]


async def test_dead_letters_are_listed_and_redriven_and_a_replay_is_reported(
    infra: Infra, platform: Platform, llm: FakeLLM, sink: WebhookSink
) -> None:
    p = platform
    viewer, operator = await token(infra, p, "acme", "viewer"), await token(infra, p, "acme", "operator")
    globex = await token(infra, p, "globex", "admin")
    api = p.ingress_url + "/api/v1"
    conv = f"ops-{uuid.uuid4().hex[:6]}"
    text = f"please answer {uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(timeout=30) as http:
        llm.fail_status = 400  # the provider refuses: a permanent error, dead-lettered at once
        try:
            await send(p, conv, text)

            async def letters() -> list[dict[str, Any]]:
                resp = await http.get(f"{api}/tenants/acme/dead-letters", headers=viewer,
                                      params={"type": "context.assembled"})
                assert resp.status_code == 200, resp.text
                return [x for x in resp.json() if x["conversation"].endswith("/" + conv)]

            [letter] = await until(letters, lambda xs: len(xs) == 1)
        finally:
            llm.fail_status = None
        assert letter["service"] == "reasoner" and "400" in letter["error"]
        assert (await http.get(f"{api}/tenants/globex/dead-letters", headers=globex)).json() == []
        await sink.wait_for(lambda m: m["conversation"] == conv)  # the agent's apology

        redrive = f"{api}/tenants/acme/dead-letters/{letter['id']}/redrive"
        assert (await http.post(redrive, headers=viewer)).status_code == 403
        assert (await http.post(redrive, headers=globex)).status_code == 404
        theirs = f"{api}/tenants/globex/dead-letters/{letter['id']}/redrive"
        assert (await http.post(theirs, headers=globex)).status_code == 404
        for _ in range(2):
            resp = await http.post(redrive, headers=operator)
            assert resp.status_code == 202, resp.text
        [answer] = await sink.wait_for(lambda m: m["conversation"] == conv and text in m["text"])
        await send(p, conv, "and then this")  # processed after both redriven copies in every service
        await sink.wait_for(lambda m: m["conversation"] == conv and "and then this" in m["text"])
        assert len([m for m in sink.received if m["conversation"] == conv and text in m["text"]]) == 1

        # a replay of one message, from the reasoner on, reusing the ledger
        asked = f"replay me {uuid.uuid4().hex[:6]}"
        message_id = await send(p, conv, asked)
        [live] = await sink.wait_for(lambda m: m["conversation"] == conv and asked in m["text"])
        pushes_before = len(sink.received)
        assert (await http.post(f"{api}/tenants/acme/replays", headers=viewer, json={})).status_code == 403
        resp = await http.post(f"{api}/tenants/acme/replays", headers=operator,
                               json={"from": "context", "correlation": message_id})
        assert resp.status_code == 202, resp.text
        run = resp.json()["run"]
        assert (await http.get(f"{api}/tenants/globex/replays/{run}", headers=globex)).status_code == 404

        async def status() -> dict[str, Any]:
            resp = await http.get(f"{api}/tenants/acme/replays/{run}", headers=viewer)
            assert resp.status_code == 200, resp.text
            return dict(resp.json())

        done = await until(status, lambda s: s["status"] == "done")
        assert (done["selected"], done["replayed"], done["failed"]) == (1, 1, 0)
        assert done["parameters"]["correlation"] == message_id and done["parameters"]["rerun_llm"] is False
        report = (await http.get(f"{api}/tenants/acme/replays/{run}/report", headers=viewer)).json()
        [row] = report["messages"]
        assert row["original"] == row["replayed"] and asked in row["replayed"] and row["changed"] is False
        assert row["delivery"] == "suppressed" and report["pushed_to_channels"] == 0
        assert live["text"] == row["original"]
        assert len(sink.received) == pushes_before, "a replayed reply is never pushed"
        assert answer["text"]
