"""Telegram end to end with a card: the agent's reply arrives as an inline keyboard (and a photo), a press of a
button comes back through the webhook as the person's next message and is answered once in the same chat."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import telegram

from tests.fakes.telegram import BOT_ID, BOT_TOKEN, BOT_USERNAME, FakeTelegram, chat, mention_entities, update, user
from tests.fakes.telegram_rich import callback_query
from tests.support.card_model import card_script
from tests.support.platform import Infra, Platform, run_platform
from tests.support.servers import FakeLLM

pytestmark = pytest.mark.e2e

SECRET = "e2e-telegram-rich-secret"
CARD = {"title": "Deploy v2?", "text": "The build passed.",
        "buttons": [{"label": "Ship it", "value": "deploy v2", "style": "primary"},
                    {"label": "Cancel", "value": "cancel", "style": "danger"}]}
CHART = {"url": "https://cdn.example.com/build-chart.png", "kind": "image", "name": "build-chart.png"}


@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[FakeLLM]:
    f = await FakeLLM(script=card_script("release", CARD, "Shall I deploy?", (CHART,))).start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def tg() -> AsyncIterator[FakeTelegram]:
    f = await FakeTelegram().start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, tg: FakeTelegram, llm: FakeLLM) -> AsyncIterator[Platform]:
    config: dict[str, Any] = {
        "tenants": [{"id": "acme"}],
        "agents": [{"id": "assistant", "model": "fake", "tools": ["card", "attach"]}],
        "models": [{"name": "fake", "base_url": llm.base_url, "model": "fake-model", "timeout_s": 10}],
        "channels": [{"id": "tg", "type": "telegram", "tenant": "acme", "agent": "assistant", "api_base": tg.url,
                      "bot_token": {"env": "E2E_TG_RICH_TOKEN", "default": BOT_TOKEN},
                      "secret_token": {"env": "E2E_TG_RICH_SECRET", "default": SECRET},
                      "bot_username": BOT_USERNAME}],
    }
    async with run_platform(infra, config) as p:
        yield p


async def post(p: Platform, upd: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient() as c:
        return await c.post(f"{p.ingress_url}/v1/webhooks/tg", content=orjson.dumps(upd),
                            headers={"content-type": "application/json", "x-telegram-bot-api-secret-token": SECRET})


async def test_card_out_press_in_answered_once_in_the_group(platform: Platform, tg: FakeTelegram) -> None:
    word = uuid.uuid4().hex[:6]
    text = f"@{BOT_USERNAME} release {word}?"
    r = await post(platform, update(text, chat_=chat(-100123, "supergroup"),
                                    entities=mention_entities(text, BOT_USERNAME)))
    assert r.status_code == 200 and r.headers["x-agentbus-outcome"] == "published"
    [card_msg] = await tg.wait_for(lambda m: "reply_markup" in m and m["chat_id"] == -100123)
    assert card_msg["plain"] == "Shall I deploy?\n\nDeploy v2?\n\nThe build passed."
    markup = telegram.InlineKeyboardMarkup.de_json(card_msg["reply_markup"], None)
    assert markup is not None
    assert [(b.text, b.callback_data) for row in markup.inline_keyboard for b in row] == [
        ("Ship it", "deploy v2"), ("Cancel", "cancel")]
    # the photo is a second call after the card's message: wait for it rather than read it at once
    [photo] = await tg.wait_for(lambda m: m["chat_id"] == -100123, media=True)
    assert photo["photo"] == CHART["url"] and photo["caption"] == CHART["name"]

    # Bob presses "Ship it" in the group, without mentioning the bot; Telegram then delivers the update again
    press = callback_query(card_msg, "deploy v2", presser=user(43, "Bob", "bob"),
                           bot=user(BOT_ID, "Agentbus", BOT_USERNAME, True))
    first = await post(platform, press)
    assert first.status_code == 200 and first.headers["x-agentbus-outcome"] == "published"
    assert orjson.loads(first.content) == {"method": "answerCallbackQuery",
                                           "callback_query_id": press["callback_query"]["id"]}
    again = await post(platform, press)
    assert again.status_code == 200 and again.headers["x-agentbus-outcome"] == "duplicate"
    [answer] = await tg.wait_for(lambda m: m["text"] == "answer: deploy v2")
    assert answer["chat_id"] == -100123 and "reply_markup" not in answer
    bad = await post(platform, {**press, "callback_query": {**press["callback_query"], "data": "x" * 65}})
    assert bad.status_code == 400
    # the bot spoke three times in this chat: the card, the photo, the one answer to the press
    assert len([m for m in tg.sent if m["chat_id"] == -100123]) == 2 and len(tg.media) == 1
