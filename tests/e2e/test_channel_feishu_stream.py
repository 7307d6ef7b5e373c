"""Feishu in mode: stream end to end: ingress holds the long connection to a fake gateway (lark-oapi's pbbp2
framing over a real WebSocket), a pushed message is answered once through egress, its retry is not."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.fakes.feishu import FakeFeishu, message_event
from tests.fakes.feishu_ws import FakeFeishuGateway
from tests.support.platform import Infra, Platform, run_platform
from tests.support.servers import FakeLLM

pytestmark = pytest.mark.e2e

APP_ID, APP_SECRET = "cli_e2e_stream", "e2e-stream-secret"


@pytest.fixture(scope="module")
async def feishu() -> AsyncIterator[tuple[FakeFeishu, FakeFeishuGateway]]:
    im = await FakeFeishu({APP_ID: APP_SECRET}).start()
    assert im.server is not None
    gateway = await FakeFeishuGateway({APP_ID: APP_SECRET}).start(on=im.server)  # one host, as on Feishu
    yield im, gateway
    await gateway.stop()
    await im.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, feishu: tuple[FakeFeishu, FakeFeishuGateway], llm: FakeLLM) -> AsyncIterator[Platform]:
    im, _ = feishu
    config: dict[str, Any] = {
        "tenants": [{"id": "acme"}],
        "agents": [{"id": "assistant", "model": "fake"}],
        "models": [{"name": "fake", "base_url": llm.base_url, "model": "fake-model", "timeout_s": 10}],
        "channels": [{
            "id": "fsws", "type": "feishu", "mode": "stream", "tenant": "acme", "agent": "assistant",
            "api_base": im.url,
            "app_id": {"env": "E2E_FSWS_APP_ID", "default": APP_ID},
            "app_secret": {"env": "E2E_FSWS_APP_SECRET", "default": APP_SECRET},
            "bot_open_id": "ou_e2e_stream_bot",
        }],
    }
    async with run_platform(infra, config, env={"AGENTBUS_INGRESS_LEASE_TTL_S": "3"}) as p:
        yield p


async def connection(p: Platform) -> dict[str, Any]:
    async with httpx.AsyncClient() as c:
        body = (await c.get(f"{p.ingress_url}/readyz")).json()
    return dict(body["connections"]["fsws"])


async def until_connected(p: Platform, timeout: float = 30.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        detail = await connection(p)
        if detail["status"] == "connected":
            return detail
        if loop.time() > deadline:
            raise AssertionError(f"the Feishu connection is not up: {detail}")
        await asyncio.sleep(0.2)


async def test_long_connection_replies_once(platform: Platform, feishu: tuple[FakeFeishu, FakeFeishuGateway]) -> None:
    im, gateway = feishu
    await until_connected(platform)
    await gateway.wait_connected()

    # the webhook route of a stream channel is refused: events come over the connection only
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{platform.ingress_url}/v1/webhooks/fsws", json={"schema": "2.0"})
    assert r.status_code == 409 and "long connection" in r.json()["error"]

    word = uuid.uuid4().hex[:6]
    event = message_event(token="unused-in-stream-mode", text=f"你好 over the socket {word}")
    first = await gateway.push(event)
    [sent] = await im.wait_for(lambda m: word in m["content_json"].get("text", ""))
    assert sent["content_json"]["text"] == f"answer: 你好 over the socket {word}"
    assert sent["reply_to"] == event["event"]["message"]["message_id"]
    await gateway.wait_acks(1)
    assert [(a.message_id, a.code) for a in gateway.acks] == [(first, 200)]  # answered once it was on the broker

    # Feishu pushes the same event again (say the answer was lost): answered, not published twice
    retry = await gateway.push(event)
    await gateway.wait_acks(2)
    assert gateway.acks[1].message_id == retry and gateway.acks[1].code == 200
    other = message_event(token="unused-in-stream-mode", text=f"second {word}")
    await gateway.push(other)
    await im.wait_for(lambda m: f"second {word}" in m["content_json"].get("text", ""))
    assert len([m for m in im.sent if word in m["content_json"].get("text", "")]) == 2
    detail = await connection(platform)
    assert detail["status"] == "connected" and detail["held_here"] and detail["events"] >= 3
    assert gateway.pings and not im.rejected
