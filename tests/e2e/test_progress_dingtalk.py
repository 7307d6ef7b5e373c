"""DingTalk progress end to end: a channel with progress: stream and a slow streaming model. The answer so far
goes out as one StandardCard interactive card of the app robot, updated as it grows and finally into the text
a non-streamed call gives; nothing else is sent (not even through the session webhook the message carried)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from tests.fakes.dingtalk import FakeDingTalk, robot_headers, robot_message
from tests.fakes.dingtalk_progress import card_text
from tests.support.platform import Infra, Platform, run_platform
from tests.support.servers import FakeLLM

pytestmark = pytest.mark.e2e

APP_KEY, APP_SECRET = "dingappkey-progress", "app-secret-progress"


@pytest.fixture(scope="module")
async def ding() -> AsyncIterator[FakeDingTalk]:
    f = await FakeDingTalk(app_key=APP_KEY, app_secret=APP_SECRET).start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[FakeLLM]:
    f = await FakeLLM(stream_delay_s=0.15).start()  # a slow model: a word every 150 ms
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, ding: FakeDingTalk, llm: FakeLLM) -> AsyncIterator[Platform]:
    config: dict[str, Any] = {
        "tenants": [{"id": "acme"}],
        "agents": [{"id": "assistant", "model": "fake"}],
        "models": [{"name": "fake", "base_url": llm.base_url, "model": "fake-model", "timeout_s": 30}],
        "channels": [{
            "id": "ding", "type": "dingtalk", "tenant": "acme", "agent": "assistant",
            "app_key": {"env": "E2E_DINGP_KEY", "default": APP_KEY},
            "app_secret": {"env": "E2E_DINGP_SECRET", "default": APP_SECRET},
            "api_base_url": ding.url, "oapi_base_url": ding.url, "progress": "stream",
        }],
    }
    async with run_platform(infra, config, env={"AGENTBUS_REASONER_STREAM_INTERVAL_S": "0.3"}) as p:
        yield p


async def until(check: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)


async def test_a_streamed_answer_is_one_card_updated_into_the_final_text(
        platform: Platform, ding: FakeDingTalk, llm: FakeLLM) -> None:
    word = uuid.uuid4().hex[:6]
    text = f"tell me {word} " + " ".join(f"w{i}" for i in range(24))
    session, expires = ding.new_session()
    msg = robot_message(text, session_webhook=session, expires_ms=expires, robot_code=APP_KEY,
                        sender_staff_id=f"staff{word}")
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{platform.ingress_url}/v1/webhooks/ding", content=orjson.dumps(msg),
                         headers=robot_headers(APP_SECRET))
        assert r.status_code == 200 and r.headers["x-agentbus-outcome"] == "published"
        [card] = await ding.wait_for(lambda m: m.get("users") == [f"staff{word}"], timeout=60)
        first = orjson.loads(card["raw"])
        await until(lambda: llm.calls_with(word), "the model was not called")
        [request] = llm.calls_with(word)
        assert request["stream"] is True
        plain = await c.post(f"{llm.base_url}/chat/completions", content=orjson.dumps(
            {k: v for k, v in request.items() if k not in ("stream", "stream_options")}),
            headers={"content-type": "application/json"})
        expected = plain.json()["choices"][0]["message"]["content"]
    biz = card["biz"]
    await until(lambda: card_text(ding, biz) == expected, "the card never became the final answer")
    started = orjson.loads(first["cardData"])["contents"][0]["text"]
    assert card["via"] == "card" and first["cardTemplateId"] == "StandardCard"
    assert started != expected and expected.startswith(started)  # it began as part of the answer
    updates = [u["contents"][0]["text"] for u in ding.cards[biz]["updates"]]
    assert len(updates) >= 2 and updates[-1] == expected and all(expected.startswith(u) for u in updates)
    assert [m for m in ding.sent if word in m.get("text", "") or m is card] == [card]  # nothing else sent
    assert not ding.rejected
