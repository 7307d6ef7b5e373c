"""Feishu progress end to end: a channel with progress: stream and a slow streaming model. The person's
message gets the Typing reaction while the agent works; the answer so far goes out as one shared card
answering it, PATCHed as the answer grows, and finally into the text a non-streamed call gives; then the
reaction is taken away. Exactly one message is sent."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from tests.fakes.feishu import FakeFeishu, event_request, message_event
from tests.support.platform import Infra, Platform, run_platform
from tests.support.servers import FakeLLM

pytestmark = pytest.mark.e2e

TOKEN, KEY, BOT = "vt-e2e-progress", "ek-e2e-progress", "ou_e2e_progress_bot"
APP_ID, APP_SECRET = "cli_e2e_progress", "e2e-progress-secret"


@pytest.fixture(scope="module")
async def feishu() -> AsyncIterator[FakeFeishu]:
    f = await FakeFeishu({APP_ID: APP_SECRET}).start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[FakeLLM]:
    f = await FakeLLM(stream_delay_s=0.15).start()  # a slow model: a word every 150 ms
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, feishu: FakeFeishu, llm: FakeLLM) -> AsyncIterator[Platform]:
    config: dict[str, Any] = {
        "tenants": [{"id": "acme"}],
        "agents": [{"id": "assistant", "model": "fake"}],
        "models": [{"name": "fake", "base_url": llm.base_url, "model": "fake-model", "timeout_s": 30}],
        "channels": [{
            "id": "fs", "type": "feishu", "tenant": "acme", "agent": "assistant", "api_base": feishu.url,
            "app_id": {"env": "E2E_FSP_APP_ID", "default": APP_ID},
            "app_secret": {"env": "E2E_FSP_APP_SECRET", "default": APP_SECRET},
            "verification_token": {"env": "E2E_FSP_TOKEN", "default": TOKEN},
            "encrypt_key": {"env": "E2E_FSP_KEY", "default": KEY},
            "bot_open_id": BOT, "progress": "stream",
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


def markdown_of(card: dict[str, Any]) -> str:
    return str(card["body"]["elements"][0]["content"])


async def test_a_streamed_answer_is_one_card_patched_into_the_final_text_under_a_typing_reaction(
        platform: Platform, feishu: FakeFeishu, llm: FakeLLM) -> None:
    word = uuid.uuid4().hex[:6]
    text = f"tell me {word} " + " ".join(f"w{i}" for i in range(24))
    ev = message_event(token=TOKEN, text=text, chat_id=f"oc_{word}")
    question = ev["event"]["message"]["message_id"]
    body, headers = event_request(ev, encrypt_key=KEY)
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{platform.ingress_url}/v1/webhooks/fs", content=body, headers=headers)
        assert r.status_code == 200 and r.headers["x-agentbus-outcome"] == "published"
        [card] = await feishu.wait_for(lambda m: m["reply_to"] == question, timeout=60)
        first = card["content"]  # the first partial as sent (the fake keeps the card as it is now)
        await until(lambda: llm.calls_with(word), "the model was not called")
        [request] = llm.calls_with(word)
        assert request["stream"] is True
        plain = await c.post(f"{llm.base_url}/chat/completions", content=orjson.dumps(
            {k: v for k, v in request.items() if k not in ("stream", "stream_options")}),
            headers={"content-type": "application/json"})
        expected = plain.json()["choices"][0]["message"]["content"]
    mid = card["message_id"]
    await until(lambda: markdown_of(feishu.card_of(mid)) == expected, "the card never became the final answer")
    await until(lambda: ("delete", question, "Typing") in feishu.reaction_log, "the reaction was never removed")
    started = markdown_of(orjson.loads(first))
    assert started != expected and expected.startswith(started)  # it began as part of the answer
    assert card["msg_type"] == "interactive" and orjson.loads(first)["config"] == {"update_multi": True}
    edits = [markdown_of(p["content_json"]) for p in feishu.patches if p["message_id"] == mid]
    assert len(edits) >= 2 and edits[-1] == expected and all(expected.startswith(e) for e in edits)
    assert [r for r in feishu.reaction_log if r[1] == question] == [("add", question, "Typing"),
                                                                    ("delete", question, "Typing")]
    assert [m for m in feishu.sent if m["reply_to"] == question] == [card]  # exactly one message
    assert not feishu.rejected
