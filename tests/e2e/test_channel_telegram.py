"""Telegram end to end: a webhook update in at ingress → sendMessage at the (fake) Bot API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from tests.fakes.telegram import BOT_TOKEN, BOT_USERNAME, FakeTelegram, chat, mention_entities, update
from tests.support.platform import Infra, Platform, run_platform
from tests.support.servers import FakeLLM

pytestmark = pytest.mark.e2e

SECRET = "e2e-telegram-secret_1"


@pytest.fixture(scope="module")
async def tg() -> AsyncIterator[FakeTelegram]:
    f = await FakeTelegram().start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, tg: FakeTelegram, llm: FakeLLM) -> AsyncIterator[Platform]:
    config: dict[str, Any] = {
        "tenants": [{"id": "acme"}],
        "agents": [{"id": "assistant", "model": "fake"},
                   {"id": "writer", "model": "fake", "reply_format": "markdown"}],
        "models": [{"name": "fake", "base_url": llm.base_url, "model": "fake-model", "timeout_s": 10}],
        "channels": [{
            "id": "tg", "type": "telegram", "tenant": "acme", "agent": "assistant", "api_base": tg.url,
            "bot_token": {"env": "E2E_TG_TOKEN", "default": BOT_TOKEN},
            "secret_token": {"env": "E2E_TG_SECRET", "default": SECRET},
            "bot_username": BOT_USERNAME,
        }, {
            "id": "tg-md", "type": "telegram", "tenant": "acme", "agent": "writer", "api_base": tg.url,
            "bot_token": {"env": "E2E_TG_TOKEN", "default": BOT_TOKEN},
            "secret_token": {"env": "E2E_TG_SECRET_MD", "default": SECRET + "md"},
            "bot_username": BOT_USERNAME,
        }],
    }
    async with run_platform(infra, config) as p:
        yield p


async def post(p: Platform, upd: dict[str, Any], secret: str | None = SECRET, channel: str = "tg") -> httpx.Response:
    headers = {"content-type": "application/json"}
    if secret is not None:
        headers["x-telegram-bot-api-secret-token"] = secret
    async with httpx.AsyncClient() as c:
        return await c.post(f"{p.ingress_url}/v1/webhooks/{channel}", content=orjson.dumps(upd), headers=headers)


async def test_group_mention_in_reply_out_once(platform: Platform, tg: FakeTelegram) -> None:
    word = uuid.uuid4().hex[:6]
    text = f"@{BOT_USERNAME} 你好 {word} (v1.0)!"
    upd = update(text, chat_=chat(-100123, "supergroup"), entities=mention_entities(text, BOT_USERNAME))
    first = await post(platform, upd)
    assert first.status_code == 200 and first.headers["x-agentbus-outcome"] == "published"
    again = await post(platform, upd)  # Telegram resends an update it thinks was not received
    assert again.status_code == 200 and again.headers["x-agentbus-outcome"] == "duplicate"
    [sent] = await tg.wait_for(lambda m: word in m["text"])
    assert sent["chat_id"] == -100123 and sent["text"] == f"answer: 你好 {word} (v1.0)!"
    assert sent["reply_parameters"]["message_id"] == upd["message"]["message_id"]
    quiet = update(f"chatter {word}", chat_=chat(-100123, "supergroup"))
    r = await post(platform, quiet)
    assert r.status_code == 200 and r.headers["x-agentbus-outcome"] == "ignored"


async def test_wrong_secret_is_refused(platform: Platform) -> None:
    assert (await post(platform, update("hi"), "not-the-secret")).status_code == 401
    assert (await post(platform, update("hi"), None)).status_code == 401


async def test_markdown_agent_reply_is_valid_markdown_v2(platform: Platform, tg: FakeTelegram) -> None:
    word = uuid.uuid4().hex[:6]
    text = f"**{word}** costs 1.5 (approx.) - see [docs](https://e.com/a_b)!"
    r = await post(platform, update(text), SECRET + "md", "tg-md")
    assert r.status_code == 200 and r.headers["x-agentbus-outcome"] == "published"
    [sent] = await tg.wait_for(lambda m: word in m["text"])
    # the fake Bot API parsed it: every reserved character was escaped and every entity closed
    assert sent["parse_mode"] == "MarkdownV2"
    assert sent["plain"] == f"answer: {word} costs 1.5 (approx.) - see docs!"
    assert {e["type"] for e in sent["entities"]} == {"bold", "text_link"}
