"""Telegram in mode: stream end to end: getUpdates long polling by one of two ingress replicas, taken over by the
other when the holder is SIGKILLed, every update answered exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.fakes.telegram import BOT_TOKEN, BOT_USERNAME, FakeTelegram, update
from tests.support.platform import Infra, Platform, run_platform
from tests.support.servers import FakeLLM

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def tg() -> AsyncIterator[FakeTelegram]:
    f = await FakeTelegram().start()
    f.updates.webhook_url = "https://old.example.test/hook"  # switching to polling removes it
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, tg: FakeTelegram, llm: FakeLLM) -> AsyncIterator[Platform]:
    config: dict[str, Any] = {
        "tenants": [{"id": "acme"}],
        "agents": [{"id": "assistant", "model": "fake"}],
        "models": [{"name": "fake", "base_url": llm.base_url, "model": "fake-model", "timeout_s": 10}],
        "channels": [{
            "id": "tgpoll", "type": "telegram", "mode": "stream", "tenant": "acme", "agent": "assistant",
            "api_base": tg.url, "bot_token": {"env": "E2E_TG_TOKEN", "default": BOT_TOKEN},
            "bot_username": BOT_USERNAME, "poll_timeout_s": 2,
        }],
    }
    async with run_platform(infra, config, env={"AGENTBUS_INGRESS_LEASE_TTL_S": "3"}) as p:
        yield p


async def connection(port: int) -> dict[str, Any]:
    async with httpx.AsyncClient() as c:
        body = (await c.get(f"http://127.0.0.1:{port}/readyz")).json()
    return dict(body["connections"]["tgpoll"])


async def until_status(ports: list[int], status: str, timeout: float = 30.0) -> int:
    """The port of the replica whose connection shows ``status``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        for port in ports:
            try:
                if (await connection(port))["status"] == status:
                    return port
            except httpx.HTTPError:
                pass  # a killed replica
        if loop.time() > deadline:
            raise AssertionError(f"no replica shows {status!r}")
        await asyncio.sleep(0.2)


async def test_polling_replies_once_and_survives_the_holders_death(platform: Platform, tg: FakeTelegram) -> None:
    await platform.stack.start_replica("ingress", "b")
    ports = [platform.stack.ports.services["ingress"], platform.stack.replica_ports["ingress-b"]]
    holder = await until_status(ports, "connected")
    other = next(p for p in ports if p != holder)
    assert (await connection(other))["status"] == "held elsewhere"
    assert tg.updates.webhook_url == ""

    # the webhook route of a stream channel is refused: events come over the connection only
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{platform.ingress_url}/v1/webhooks/tgpoll", json=update("hi"))
    assert r.status_code == 409 and "long connection" in r.json()["error"]

    word = uuid.uuid4().hex[:6]
    tg.updates.push(update(f"before {word}"))
    await tg.wait_for(lambda m: f"before {word}" in m["text"])

    # SIGKILL the holder while updates keep coming: the other replica takes the connection over
    proc = next(p for name, p in platform.procs.items()
                if name.startswith("ingress") and (platform.stack.replica_ports.get(name) or
                                                   platform.stack.ports.services["ingress"]) == holder)
    await proc.kill()
    texts = [f"during {word} {i}" for i in range(5)]
    for t in texts:
        tg.updates.push(update(t))
    assert await until_status([other], "connected") == other
    for t in texts:
        await tg.wait_for(lambda m, t=t: t in m["text"], timeout=60)
    await asyncio.sleep(1.0)  # a second answer to any of them would have arrived by now
    sent = [m["text"] for m in tg.sent if word in m["text"]]
    assert sorted(sent) == sorted(f"answer: {t}" for t in [f"before {word}", *texts])
    assert tg.updates.unconfirmed() == []
    detail = await connection(other)
    assert detail["held_here"] and detail["events"] >= 5
