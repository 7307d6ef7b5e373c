"""Model health through the running platform: a primary model whose provider is down is found so by the
reasoner's probe and skipped (the backup answers, the primary gets no call), comes back when a probe
finds it up again, and the operator API shows both models' health as the reasoner reports it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.e2e.test_operator_api import cli, until
from tests.e2e.test_pipeline import send
from tests.support.platform import Infra, base_config, run_platform
from tests.support.servers import FakeLLM, WebhookSink

pytestmark = pytest.mark.e2e


@pytest.fixture
async def primary() -> AsyncIterator[FakeLLM]:
    f = await FakeLLM(reply_prefix="primary: ", fail_status=503).start()
    yield f
    await f.stop()


@pytest.fixture
async def backup() -> AsyncIterator[FakeLLM]:
    f = await FakeLLM(reply_prefix="backup: ").start()
    yield f
    await f.stop()


async def test_a_model_that_is_down_is_skipped_until_a_probe_finds_it_up(
    infra: Infra, sink: WebhookSink, primary: FakeLLM, backup: FakeLLM
) -> None:
    assert sink.server is not None
    config = base_config(sink.server.url)
    config["models"] = [{"name": "primary", "base_url": primary.base_url, "model": "fake-model", "timeout_s": 5},
                        {"name": "backup", "base_url": backup.base_url, "model": "fake-model", "timeout_s": 5}]
    config["agents"][0].update(model="primary", fallback_models=["backup"])
    async with run_platform(infra, config, services=("ingress", "memory", "reasoner", "egress"),
                            env={"AGENTBUS_MODEL_PROBE_INTERVAL_S": "0.5"}) as p, httpx.AsyncClient(timeout=15) as http:

        async def health() -> dict[str, Any]:
            return dict((await http.get(f"{p.url_of('reasoner')}/v1/models/health")).json())

        seen = await until(health, lambda h: h["primary"]["up"] is False and h["backup"]["up"] is True)
        assert seen["primary"]["error"].startswith("HTTP 503")
        assert primary.model_listings, "the verdict came from a probe of the model list"
        assert primary.calls == []

        conv = f"c-{uuid.uuid4().hex[:6]}"
        assert (await send(p, "acme", conv, "first question")).status_code == 202
        [reply] = await sink.wait_for(lambda m: m["conversation"] == conv)
        assert reply["text"] == "backup: first question"
        assert primary.calls == [], "the model that is down got no call"

        code, token, err = await cli(infra, p, "tokens", "create", "--name", "ops", "--tenant", "acme",
                                     "--role", "viewer")
        assert code == 0, err
        auth = {"authorization": f"Bearer {token.strip()}"}
        listed = (await http.get(f"{p.ingress_url}/api/v1/models", headers=auth)).json()
        by_name = {m["name"]: m["health"] for m in listed}
        assert by_name["primary"]["up"] is False and by_name["primary"]["error"].startswith("HTTP 503")
        assert by_name["backup"]["up"] is True and by_name["backup"]["checked_at"]

        primary.fail_status = None  # the provider is back: the next probe says so, and it answers again
        await until(health, lambda h: h["primary"]["up"] is True)
        again = f"c-{uuid.uuid4().hex[:6]}"
        assert (await send(p, "acme", again, "second question")).status_code == 202
        [reply] = await sink.wait_for(lambda m: m["conversation"] == again)
        assert reply["text"] == "primary: second question"
        assert len(primary.calls_with("second question")) == 1

        listed = (await http.get(f"{p.ingress_url}/api/v1/models", headers=auth)).json()
        assert {m["name"]: m["health"]["up"] for m in listed} == {"primary": True, "backup": True}
