"""Two egress processes pushing to one DingTalk custom robot keep the robot's limit between them.

A custom robot takes 20 messages a minute (here configured to 6, and the fake refuses more, as DingTalk
does); the robot serves several group chats, whose conversations fall on partitions of both egress
replicas, so both push to it. The fake records the time of every call of the robot: no 60-second window
may hold more than the limit. The replies also at-mention the person who asked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from aiokafka.partitioner import murmur2

from agentbus.ids import conversation_key
from tests.fakes.dingtalk import FakeDingTalk, robot_headers, robot_message
from tests.support.platform import Infra, Platform, run_platform
from tests.support.servers import FakeLLM

pytestmark = pytest.mark.e2e

APP_KEY, APP_SECRET, ROBOT_TOKEN = "dingappkey-replicas", "app-secret-replicas", "robot-token-replicas"
LIMIT, PARTITIONS, MESSAGES = 6, 3, 9


def chats_on_every_partition() -> list[str]:
    """One group chat per partition, so every egress replica owns some of them."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < PARTITIONS:
        chat = f"cidShared{n}=="
        key = conversation_key("acme", "ding", chat).encode()
        found.setdefault((murmur2(key) & 0x7FFFFFFF) % PARTITIONS, chat)
        n += 1
    return sorted(found.values())


CHATS = chats_on_every_partition()


@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[FakeLLM]:
    f = await FakeLLM(reply_prefix="答复：").start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def ding() -> AsyncIterator[FakeDingTalk]:
    f = await FakeDingTalk(app_key=APP_KEY, app_secret=APP_SECRET, robots={ROBOT_TOKEN: None},
                           robot_limit_per_minute=LIMIT).start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, llm: FakeLLM, ding: FakeDingTalk) -> AsyncIterator[Platform]:
    robot = {"access_token": {"env": "E2E_REPLICAS_ROBOT", "default": ROBOT_TOKEN}}
    config: dict[str, Any] = {
        "tenants": [{"id": "acme"}],
        "agents": [{"id": "assistant", "model": "fake", "memory": {"history_turns": 2, "recall_top_k": 0}}],
        "models": [{"name": "fake", "base_url": llm.base_url, "model": "fake-model", "timeout_s": 10}],
        "channels": [{
            "id": "ding", "type": "dingtalk", "tenant": "acme", "agent": "assistant",
            "app_key": {"env": "E2E_REPLICAS_KEY", "default": APP_KEY},
            "app_secret": {"env": "E2E_REPLICAS_SECRET", "default": APP_SECRET},
            "custom_robots": {chat: robot for chat in CHATS},
            "rate_limit_per_minute": LIMIT,
            "api_base_url": ding.url, "oapi_base_url": ding.url,
        }],
        "jobs": [],
    }
    async with run_platform(infra, config, partitions=PARTITIONS) as p:
        await p.stack.start_replica("egress", "1")
        yield p


async def test_two_egress_replicas_keep_one_robot_limit(platform: Platform, ding: FakeDingTalk) -> None:
    async with httpx.AsyncClient() as c:
        for i in range(MESSAGES):
            staff = f"staff{i:02d}"
            msg = robot_message(f"第{i}个问题", group=True, conversation_id=CHATS[i % len(CHATS)], in_at_list=True,
                                sender_staff_id=staff, robot_code=APP_KEY)
            r = await c.post(f"{platform.ingress_url}/v1/webhooks/ding", content=orjson.dumps(msg),
                             headers=robot_headers(APP_SECRET))
            assert r.status_code == 200 and r.headers["x-agentbus-outcome"] == "published"
    deadline = time.monotonic() + 180  # the limit lets the last three out a minute after the first six
    while len([m for m in ding.sent if m["via"] == "robot"]) < MESSAGES:
        assert time.monotonic() < deadline, (ding.sent, ding.rejected)
        await asyncio.sleep(0.5)
    pushed = [m for m in ding.sent if m["via"] == "robot"]
    calls = sorted(ding.robot_calls[ROBOT_TOKEN])
    # every call of the robot got through (none refused as too fast), and no minute held more than LIMIT
    assert len(calls) == MESSAGES and not ding.rejected
    crowded = [(a, b) for a, b in zip(calls, calls[LIMIT:], strict=False) if b - a < 60.0]
    assert crowded == [], calls
    # both replicas pushed to the robot (each owns partitions holding some of its chats)
    logs = platform.stack.home / "logs"
    for name in ("egress", "egress-1"):
        assert "reply_pushed" in (logs / f"{name}.log").read_text(), name
    # each reply at-mentions its asker, in the at field and in the text, as DingTalk requires
    for m in pushed:
        [staff] = m["at_user_ids"]
        assert m["shown"] == [staff] and m["text"].startswith(f"@{staff} 答复：第")
