"""Progress end to end: a Telegram channel with progress: stream and a slow streaming model. The chat sees
the typing indicator, one message with the answer so far, edits of it as the answer grows, and at the end
the answer itself in that same message: exactly one sendMessage, and the text a non-streamed call gives."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from tests.fakes.telegram import BOT_TOKEN, FakeTelegram, update
from tests.support.platform import Infra, Platform, run_platform
from tests.support.servers import FakeLLM

pytestmark = pytest.mark.e2e

SECRET = "e2e-progress-secret_1"


@pytest.fixture(scope="module")
async def tg() -> AsyncIterator[FakeTelegram]:
    f = await FakeTelegram().start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[FakeLLM]:
    f = await FakeLLM(stream_delay_s=0.15).start()  # a slow model: a word every 150 ms
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, tg: FakeTelegram, llm: FakeLLM) -> AsyncIterator[Platform]:
    config: dict[str, Any] = {
        "tenants": [{"id": "acme"}],
        "agents": [{"id": "assistant", "model": "fake"}],
        "models": [{"name": "fake", "base_url": llm.base_url, "model": "fake-model", "timeout_s": 30}],
        "channels": [{
            "id": "tg", "type": "telegram", "tenant": "acme", "agent": "assistant", "api_base": tg.url,
            "bot_token": {"env": "E2E_TG_TOKEN", "default": BOT_TOKEN},
            "secret_token": {"env": "E2E_TG_SECRET", "default": SECRET}, "progress": "stream",
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


async def test_a_streamed_answer_is_one_message_edited_into_the_final_text(
        platform: Platform, tg: FakeTelegram, llm: FakeLLM) -> None:
    word = uuid.uuid4().hex[:6]
    text = f"tell me {word} " + " ".join(f"w{i}" for i in range(24))
    upd = update(text)
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{platform.ingress_url}/v1/webhooks/tg", content=orjson.dumps(upd),
                         headers={"content-type": "application/json", "x-telegram-bot-api-secret-token": SECRET})
        assert r.status_code == 200 and r.headers["x-agentbus-outcome"] == "published"
        # the first partial: the start of the answer (this module's fake chat sees nothing else)
        [sent] = await tg.wait_for(lambda m: m["chat_id"] == 42, timeout=60)
        await until(lambda: llm.calls_with(word), "the model was not called")
        [request] = llm.calls_with(word)
        assert request["stream"] is True
        # the answer the same request gets without streaming
        plain = await c.post(f"{llm.base_url}/chat/completions", content=orjson.dumps(
            {k: v for k, v in request.items() if k not in ("stream", "stream_options")}),
            headers={"content-type": "application/json"})
        expected = plain.json()["choices"][0]["message"]["content"]
    mid = sent["message_id"]
    await until(lambda: tg.text_of(mid) == expected, "the streamed message never became the final answer")
    assert sent["plain"] != expected and expected.startswith(sent["plain"])  # it began as part of the answer
    assert sent["reply_parameters"]["message_id"] == upd["message"]["message_id"]
    assert [a["action"] for a in tg.actions if a["chat_id"] == sent["chat_id"]][:1] == ["typing"]
    edits = [e["plain"] for e in tg.edits if e["message_id"] == mid]
    assert len(edits) >= 2 and edits[-1] == expected  # partials, then the final text
    assert all(expected.startswith(e) for e in edits)
    assert tg.sent == [sent]  # exactly one sendMessage
