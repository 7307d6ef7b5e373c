"""Slack in mode: stream end to end: Socket Mode through ingress's supervisor, reply by chat.postMessage, one
answer per message however often Slack redelivers it, and a dropped socket reopened on its own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.fakes.slack import BOT_USER, FakeSlack, app_mention, event_callback
from tests.fakes.slack_socket import FakeSlackSocket
from tests.support.platform import Infra, Platform, run_platform
from tests.support.servers import FakeLLM

pytestmark = pytest.mark.e2e

APP_TOKEN = "xapp-1-A0APP00001-e2e-token"
BOT_TOKEN = "xoxb-e2e-0000-token"


@pytest.fixture(scope="module")
async def slack() -> AsyncIterator[FakeSlack]:
    f = await FakeSlack({BOT_TOKEN}).start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def gateway(slack: FakeSlack) -> AsyncIterator[FakeSlackSocket]:
    g = await FakeSlackSocket({APP_TOKEN}, web_api=slack.url).start()
    yield g
    await g.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, gateway: FakeSlackSocket, llm: FakeLLM) -> AsyncIterator[Platform]:
    config: dict[str, Any] = {
        "tenants": [{"id": "acme"}],
        "agents": [{"id": "assistant", "model": "fake"}],
        "models": [{"name": "fake", "base_url": llm.base_url, "model": "fake-model", "timeout_s": 10}],
        "channels": [{
            "id": "slsock", "type": "slack", "mode": "stream", "tenant": "acme", "agent": "assistant",
            "api_base": gateway.url, "app_token": {"env": "E2E_SL_APP", "default": APP_TOKEN},
            "bot_token": {"env": "E2E_SL_TOKEN", "default": BOT_TOKEN}, "reply_in_thread": True,
        }],
    }
    async with run_platform(infra, config) as p:
        yield p


async def connection(p: Platform) -> dict[str, Any]:
    async with httpx.AsyncClient() as c:
        body = (await c.get(f"http://127.0.0.1:{p.stack.ports.services['ingress']}/readyz")).json()
    return dict(body["connections"]["slsock"])


async def until_connected(p: Platform, reconnects: int = 0, timeout: float = 30.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        state = await connection(p)
        if state["status"] == "connected" and state["reconnects"] >= reconnects:
            return state
        if loop.time() > deadline:
            raise AssertionError(f"connection not back: {state}")
        await asyncio.sleep(0.2)


async def test_socket_mode_reply_once_and_reconnect(platform: Platform, gateway: FakeSlackSocket,
                                                    slack: FakeSlack) -> None:
    await until_connected(platform)
    link = await gateway.wait_link()

    word = uuid.uuid4().hex[:6]
    payload = event_callback(app_mention(f"<@{BOT_USER}> stream {word}"))
    first = await gateway.push(payload, link=link)
    await gateway.wait(lambda: gateway.acked(first))
    [sent] = await slack.wait_for(lambda m: word in m.get("text", ""))
    assert sent["channel"] == "C0GENERAL1" and sent["thread_ts"] == payload["event"]["ts"]
    assert sent["text"] == f"<@U0ALICE001> answer: stream {word}"

    # Slack redelivers the same event (its ack went missing): acknowledged again, answered no second time
    again = await gateway.push(payload, link=link, retry_attempt=1, retry_reason="timeout")
    await gateway.wait(lambda: gateway.acked(again))

    # the socket is cut without a close frame: the supervisor opens a new one and messages flow again
    gateway.drop(link)
    await until_connected(platform, reconnects=1)
    second = uuid.uuid4().hex[:6]
    pushed = await gateway.push(event_callback(app_mention(f"<@{BOT_USER}> after {second}")))
    await gateway.wait(lambda: gateway.acked(pushed))
    await slack.wait_for(lambda m: second in m.get("text", ""))
    assert len([m for m in slack.posted if word in m.get("text", "")]) == 1
    state = await connection(platform)
    assert state["events"] >= 3 and gateway.opened >= 2
