"""DingTalk end to end: signed robot messages into ingress, replies observed at a local fake of DingTalk."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from tests.fakes.dingtalk import FakeDingTalk, encrypted_callback, open_success, robot_headers, robot_message
from tests.support.platform import Infra, Platform, run_platform
from tests.support.servers import FakeLLM

pytestmark = pytest.mark.e2e

APP_KEY, APP_SECRET = "dingappkey-e2e", "app-secret-e2e"
CB_TOKEN, CB_AES = "cb-token-e2e", "o1w0aum42yaptlz8alnhwikjd3jenzt9cb9wmzptgus"


@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[FakeLLM]:
    f = await FakeLLM(reply_prefix="答复：").start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def ding() -> AsyncIterator[FakeDingTalk]:
    f = await FakeDingTalk(app_key=APP_KEY, app_secret=APP_SECRET).start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, llm: FakeLLM, ding: FakeDingTalk) -> AsyncIterator[Platform]:
    config: dict[str, Any] = {
        "tenants": [{"id": "acme"}],
        "agents": [{"id": "assistant", "model": "fake", "memory": {"history_turns": 5, "recall_top_k": 0}}],
        "models": [{"name": "fake", "base_url": llm.base_url, "model": "fake-model", "timeout_s": 10}],
        "channels": [
            {
                "id": "ding",
                "type": "dingtalk",
                "tenant": "acme",
                "agent": "assistant",
                "app_key": {"env": "E2E_DING_KEY", "default": APP_KEY},
                "app_secret": {"env": "E2E_DING_SECRET", "default": APP_SECRET},
                "callback_token": {"env": "E2E_DING_CB_TOKEN", "default": CB_TOKEN},
                "callback_aes_key": {"env": "E2E_DING_CB_AES", "default": CB_AES},
                "api_base_url": ding.url,
                "oapi_base_url": ding.url,
            }
        ],
        "jobs": [],
    }
    async with run_platform(infra, config) as p:
        yield p


async def post(
    p: Platform,
    body: dict[str, Any] | bytes,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    async with httpx.AsyncClient() as c:
        return await c.post(
            f"{p.ingress_url}/v1/webhooks/ding",
            content=content,
            headers=headers or robot_headers(APP_SECRET),
            params=query,
        )


async def test_direct_message_is_answered_through_the_session_webhook(
    platform: Platform, ding: FakeDingTalk
) -> None:
    words = f"你好，请记住暗号「{uuid.uuid4().hex[:6]}」"
    session, expires = ding.new_session()
    msg = robot_message(
        words,
        session_webhook=session,
        expires_ms=expires,
        msg_id=f"msg{uuid.uuid4().hex}",
        robot_code=APP_KEY,
    )
    first = await post(platform, msg)
    assert first.status_code == 200, first.text
    assert first.headers["x-agentbus-outcome"] == "published"
    # DingTalk retries the same message: published once
    again = await post(platform, msg)
    assert again.headers["x-agentbus-outcome"] == "duplicate"
    [sent] = await ding.wait_for(lambda m: words in m["text"])
    assert sent["via"] == "session" and sent["text"] == f"答复：{words}"
    assert f"答复：{words}".encode() in sent["raw"]


async def test_group_mention_after_the_session_expired_goes_through_the_openapi(
    platform: Platform, ding: FakeDingTalk
) -> None:
    group = f"cidGroup{uuid.uuid4().hex[:8]}=="
    quiet = robot_message("没有人叫我", group=True, conversation_id=group, robot_code=APP_KEY)
    r = await post(platform, quiet)
    assert r.status_code == 200 and r.headers["x-agentbus-outcome"] == "ignored"
    session, _ = ding.new_session()
    asked = robot_message(
        "@助手 今天几号？",
        group=True,
        in_at_list=True,
        conversation_id=group,
        robot_code=APP_KEY,
        session_webhook=session,
        expires_ms=int(time.time() * 1000) - 1000,
    )
    r = await post(platform, asked)
    assert r.headers["x-agentbus-outcome"] == "published"
    [sent] = await ding.wait_for(lambda m: m.get("conversation") == group)
    assert sent["via"] == "group" and sent["text"] == "答复：@助手 今天几号？"
    assert ding.token_fetches == 1
    assert not [m for m in ding.sent if "没有人叫我" in m["text"]]


async def test_callback_handshake_and_bad_requests(platform: Platform) -> None:
    query, body = encrypted_callback(CB_TOKEN, CB_AES, APP_KEY, {"EventType": "check_url"})
    r = await post(platform, body, headers={"content-type": "application/json"}, query=query)
    assert r.status_code == 200 and open_success(CB_TOKEN, CB_AES, APP_KEY, r.content) == "success"
    msg = robot_message("hi")
    stale = robot_headers(APP_SECRET, int(time.time() * 1000) - 2 * 3600_000)
    assert (
        await post(platform, msg, headers={**robot_headers(APP_SECRET), "sign": "AAAA"})
    ).status_code == 401
    assert (await post(platform, msg, headers=stale)).status_code == 401
    assert (await post(platform, msg, headers={"content-type": "application/json"})).status_code == 401
    assert (await post(platform, b"{", headers=robot_headers(APP_SECRET))).status_code == 400
