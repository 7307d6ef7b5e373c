"""Slack end to end: a signed Events API request in at ingress → chat.postMessage at the (fake) Slack."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.fakes.slack import BOT_USER, FakeSlack, app_mention, event_callback, message, signed
from tests.support.platform import Infra, Platform, run_platform
from tests.support.servers import FakeLLM

pytestmark = pytest.mark.e2e

SECRET = "e2e-slack-signing-secret"
BOT_TOKEN = "xoxb-e2e-0000-token"


@pytest.fixture(scope="module")
async def slack() -> AsyncIterator[FakeSlack]:
    f = await FakeSlack({BOT_TOKEN}).start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, slack: FakeSlack, llm: FakeLLM) -> AsyncIterator[Platform]:
    config: dict[str, Any] = {
        "tenants": [{"id": "acme"}],
        "agents": [{"id": "assistant", "model": "fake"}],
        "models": [{"name": "fake", "base_url": llm.base_url, "model": "fake-model", "timeout_s": 10}],
        "channels": [{
            "id": "sl", "type": "slack", "tenant": "acme", "agent": "assistant", "api_base": slack.url,
            "signing_secret": {"env": "E2E_SL_SECRET", "default": SECRET},
            "bot_token": {"env": "E2E_SL_TOKEN", "default": BOT_TOKEN},
            "reply_in_thread": True,
        }],
    }
    async with run_platform(infra, config) as p:
        yield p


async def post(p: Platform, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as c:
        return await c.post(f"{p.ingress_url}/v1/webhooks/sl", content=body, headers=headers)


async def test_url_verification_through_ingress(platform: Platform) -> None:
    r = await post(platform, *signed(SECRET, {"token": "t", "challenge": "ch-1", "type": "url_verification"}))
    assert r.status_code == 200 and r.json() == {"challenge": "ch-1"}


async def test_mention_in_threaded_reply_out_once(platform: Platform, slack: FakeSlack) -> None:
    word = uuid.uuid4().hex[:6]
    ev = app_mention(f"<@{BOT_USER}> 你好，{word} & <friends>".replace("<friends>", "&lt;friends&gt;"))
    payload = event_callback(ev)
    first = await post(platform, *signed(SECRET, payload))
    assert first.status_code == 200 and first.headers["x-agentbus-outcome"] == "published"
    retry = await post(platform, *signed(SECRET, payload, retry_num=1))
    assert retry.status_code == 200 and retry.headers["x-agentbus-outcome"] == "duplicate"
    # the same message through the message.channels subscription: a different event_id, still one reply
    twin = event_callback(message(ev["text"], channel=ev["channel"], channel_type="channel", ts=ev["ts"]))
    assert (await post(platform, *signed(SECRET, twin))).headers["x-agentbus-outcome"] == "duplicate"
    [sent] = await slack.wait_for(lambda m: word in m.get("text", ""))
    assert sent["channel"] == "C0GENERAL1" and sent["thread_ts"] == ev["ts"]
    # a reply in a channel mentions the asker first
    assert sent["text"] == f"<@U0ALICE001> answer: 你好，{word} &amp; &lt;friends&gt;" and sent["mrkdwn"] is False
    assert sent["mentions"] == ["U0ALICE001"]
    assert not slack.unescaped


async def test_forged_and_stale_requests_are_refused(platform: Platform) -> None:
    payload = event_callback(message("hi"))
    assert (await post(platform, *signed("wrong-secret", payload))).status_code == 401
    old = await post(platform, *signed(SECRET, payload, timestamp=1_500_000_000))
    assert old.status_code == 401 and "stale" in old.json()["error"]
