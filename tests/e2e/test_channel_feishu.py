"""Feishu end to end: an encrypted, signed event in at ingress → a reply at the (fake) Feishu IM API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from tests.fakes.feishu import FakeFeishu, event_request, mention, message_event
from tests.support.platform import Infra, Platform, run_platform
from tests.support.servers import FakeLLM

pytestmark = pytest.mark.e2e

TOKEN, KEY, BOT = "vt-e2e-token", "ek-e2e-key", "ou_e2e_bot"
APP_ID, APP_SECRET = "cli_e2e", "e2e-app-secret"


@pytest.fixture(scope="module")
async def feishu() -> AsyncIterator[FakeFeishu]:
    f = await FakeFeishu({APP_ID: APP_SECRET}).start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, feishu: FakeFeishu, llm: FakeLLM) -> AsyncIterator[Platform]:
    config: dict[str, Any] = {
        "tenants": [{"id": "acme"}],
        "agents": [{"id": "assistant", "model": "fake"}],
        "models": [{"name": "fake", "base_url": llm.base_url, "model": "fake-model", "timeout_s": 10}],
        "channels": [{
            "id": "fs", "type": "feishu", "tenant": "acme", "agent": "assistant", "api_base": feishu.url,
            "app_id": {"env": "E2E_FS_APP_ID", "default": APP_ID},
            "app_secret": {"env": "E2E_FS_APP_SECRET", "default": APP_SECRET},
            "verification_token": {"env": "E2E_FS_TOKEN", "default": TOKEN},
            "encrypt_key": {"env": "E2E_FS_KEY", "default": KEY},
            "bot_open_id": BOT,
        }],
    }
    async with run_platform(infra, config) as p:
        yield p


async def post(p: Platform, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as c:
        return await c.post(f"{p.ingress_url}/v1/webhooks/fs", content=body, headers=headers)


async def test_url_verification_through_ingress(platform: Platform) -> None:
    body, _ = event_request({"challenge": "c-123", "token": TOKEN, "type": "url_verification"}, encrypt_key=KEY)
    r = await post(platform, body, {"content-type": "application/json"})
    assert r.status_code == 200 and r.json() == {"challenge": "c-123"}


async def test_group_mention_in_reply_out_once(platform: Platform, feishu: FakeFeishu) -> None:
    word = uuid.uuid4().hex[:6]
    text = f"@_user_1 帮我查一下订单 {word}"
    ev = message_event(token=TOKEN, text=text, chat_type="group", chat_id=f"oc_{word}",
                       mentions=[mention("@_user_1", BOT, "助手", "bot")])
    body, headers = event_request(ev, encrypt_key=KEY)
    first = await post(platform, body, headers)
    assert first.status_code == 200, first.text
    assert first.headers["x-agentbus-outcome"] == "published"
    # Feishu retries the same event (a fresh signature, the same event_id): published once
    retry = await post(platform, *event_request(ev, encrypt_key=KEY))
    assert retry.status_code == 200 and retry.headers["x-agentbus-outcome"] == "duplicate"
    [sent] = await feishu.wait_for(lambda m: word in m["content_json"].get("text", ""))
    assert sent["reply_to"] == ev["event"]["message"]["message_id"]
    # a group reply mentions the asker (their open_id, as ingress read it from the event)
    assert sent["content_json"]["text"] == f'<at user_id="ou_alice"></at> answer: 帮我查一下订单 {word}'
    assert sent["mentions"] == ["ou_alice"]
    assert len(sent["uuid"]) == 36 and not feishu.rejected
    # a group message without the mention is acknowledged but not answered
    quiet = message_event(token=TOKEN, text=f"just chatting {word}", chat_type="group", chat_id=f"oc_{word}")
    r = await post(platform, *event_request(quiet, encrypt_key=KEY))
    assert r.status_code == 200 and r.headers["x-agentbus-outcome"] == "ignored"


async def test_forged_requests_are_refused(platform: Platform) -> None:
    ev = message_event(token=TOKEN, text="hi")
    body, headers = event_request(ev, encrypt_key="not-the-key")
    assert (await post(platform, body, headers)).status_code == 401
    plain = orjson.dumps(ev)
    assert (await post(platform, plain, {"content-type": "application/json"})).status_code == 401
