"""Memory as a process: memory.requested commands on the real broker are applied, and what they did is
seen through memory's own admin endpoint ``/v1/recall``, as the agent's memory tool sees it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from agentbus.bus import Producer
from agentbus.events import MemoryCommand, MemoryRequested
from agentbus.settings import Settings
from tests.support.platform import Infra, Platform, base_config, run_platform
from tests.unit.test_memory_tool import context

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def platform(infra: Infra) -> AsyncIterator[Platform]:
    async with run_platform(infra, base_config(), services=("memory",)) as p:
        yield p


async def recall(p: Platform, text: str, tenant: str = "acme") -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=p.url_of("memory")) as http:
        resp = await http.post("/v1/recall", json={"tenant": tenant, "text": text, "limit": 5})
        assert resp.status_code == 200, resp.text
        return list(resp.json()["matches"])


async def until(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("memory did not get there")
        await asyncio.sleep(0.2)


async def test_commands_on_the_bus_change_what_recall_finds(platform: Platform, infra: Infra) -> None:
    producer = Producer(Settings(kafka_bootstrap_servers=infra.bootstrap, topic_prefix=platform.prefix), "test")
    await producer.start()
    word = f"locker {uuid.uuid4().hex[:4]}"
    ctx = context()

    def command(action: str, text: str, n: int) -> MemoryRequested:
        data = MemoryCommand.model_validate({"action": action, "text": text, "subject": "u1"})
        return ctx.cause.follow(MemoryRequested, data, source="reasoner", step=f"test:{n}")

    remember = command("remember", f"Alice's {word} is on level 2", 1)
    await producer.publish([command("remember", "the offsite is in Lisbon in May", 0), remember, remember])

    async def remembered() -> bool:
        return any(m["text"] == f"Alice's {word} is on level 2" for m in await recall(platform, f"Alice's {word}"))

    await until(remembered)
    [found] = [m for m in await recall(platform, f"Alice's {word}") if word in m["text"]]  # once, redelivered or not
    assert found["kind"] == "fact"
    assert await recall(platform, f"Alice's {word}", tenant="globex") == []

    await producer.publish([command("forget", f"Alice's {word}", 2)])

    async def forgotten() -> bool:
        return not any(word in m["text"] for m in await recall(platform, f"Alice's {word}"))

    await until(forgotten)
    assert any("Lisbon" in m["text"] for m in await recall(platform, "where is the offsite?"))
    await producer.stop()
