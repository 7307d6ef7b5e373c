"""Feishu cards end to end: the model's ``card`` tool call reaches the (fake) Feishu IM API as a card JSON 2.0
with callback buttons; a press (the encrypted, signed ``card.action.trigger`` callback) comes back at ingress
as the user's next message of the same chat, answered once, as a reply to the card; a redelivered press is
not answered again; an image in a rich-text post is fetched as a resource of the message and reaches a vision
model with its exact bytes, answered once across Feishu's redelivery."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from tests.fakes.feishu import FakeFeishu, event_request, mention, message_event
from tests.fakes.feishu_rich import card_action_event, card_problem, pressed
from tests.support.modes import asked, calls_asking, image_part
from tests.support.platform import Infra, Platform, run_platform
from tests.support.servers import FakeLLM, content_text, tool_call

pytestmark = pytest.mark.e2e

TOKEN, KEY, BOT = "vt-rich-token", "ek-rich-key", "ou_rich_bot"
APP_ID, APP_SECRET = "cli_rich", "rich-app-secret"


def script(body: dict[str, Any]) -> dict[str, Any]:
    """Offers a card for "deploy?"; answers a press by its value."""
    last = body["messages"][-1]
    if last["role"] == "tool":
        return {"content": "Shall I deploy it?"}
    said = content_text(last["content"])
    if said.startswith("deploy? "):
        word = said.split()[-1]
        return {"tool_calls": [tool_call("card", {"title": "Release", "text": f"Build {word} is ready.", "buttons": [
            {"label": "Deploy", "value": f"deploy {word}", "style": "primary"},
            {"label": "Cancel", "value": f"cancel {word}", "style": "danger"}]}, "call_card")]}
    return {"content": f"done: {said}"}


@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[FakeLLM]:
    f = await FakeLLM(script=script).start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def feishu() -> AsyncIterator[FakeFeishu]:
    f = await FakeFeishu({APP_ID: APP_SECRET}).start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, feishu: FakeFeishu, llm: FakeLLM) -> AsyncIterator[Platform]:
    config: dict[str, Any] = {
        "tenants": [{"id": "acme"}],
        "agents": [{"id": "assistant", "model": "fake", "tools": ["card"]}],
        "models": [{"name": "fake", "base_url": llm.base_url, "model": "fake-model", "timeout_s": 10,
                    "vision": True}],
        "channels": [{
            "id": "fsr", "type": "feishu", "tenant": "acme", "agent": "assistant", "api_base": feishu.url,
            "app_id": {"env": "E2E_FSR_APP_ID", "default": APP_ID},
            "app_secret": {"env": "E2E_FSR_APP_SECRET", "default": APP_SECRET},
            "verification_token": {"env": "E2E_FSR_TOKEN", "default": TOKEN},
            "encrypt_key": {"env": "E2E_FSR_KEY", "default": KEY},
            "bot_open_id": BOT,
        }],
    }
    async with run_platform(infra, config) as p:
        yield p


async def post(p: Platform, event: dict[str, Any]) -> httpx.Response:
    body, headers = event_request(event, encrypt_key=KEY)
    async with httpx.AsyncClient() as c:
        return await c.post(f"{p.ingress_url}/v1/webhooks/fsr", content=body, headers=headers)


def said(m: dict[str, Any]) -> str:
    return str(m["content_json"].get("text", ""))


async def test_card_out_press_in_answered_once(platform: Platform, feishu: FakeFeishu) -> None:
    word, chat = uuid.uuid4().hex[:6], f"oc_{uuid.uuid4().hex[:8]}"
    ask = message_event(token=TOKEN, text=f"@_user_1 deploy? {word}", chat_type="group", chat_id=chat,
                        mentions=[mention("@_user_1", BOT, "助手", "bot")])
    r = await post(platform, ask)
    assert r.status_code == 200 and r.headers["x-agentbus-outcome"] == "published", r.text

    [card] = await feishu.wait_for(lambda m: m["msg_type"] == "interactive" and word in orjson.dumps(m["content_json"])
                                   .decode())
    assert card["reply_to"] == ask["event"]["message"]["message_id"] and card_problem(card["content_json"]) is None
    body = card["content_json"]["body"]["elements"]
    assert body[0]["content"] == f"<at id=ou_alice></at> Shall I deploy it?\n\nBuild {word} is ready."
    assert [(b["text"]["content"], b["type"]) for b in body[1:]] == [("Deploy", "primary"), ("Cancel", "danger")]

    # Bob presses Deploy on the card: a message of the same chat, answered as a reply to the card
    press = card_action_event(token=TOKEN, value=pressed(card, "Deploy"), open_message_id=card["message_id"],
                              open_chat_id=chat, operator="ou_bob")
    first = await post(platform, press)
    assert first.status_code == 200 and first.headers["x-agentbus-outcome"] == "published", first.text
    assert first.json() == {"toast": {"type": "info", "content": "✓ Deploy"}}
    [answer] = await feishu.wait_for(lambda m: said(m).endswith(f"done: deploy {word}"))
    assert answer["reply_to"] == card["message_id"]
    assert said(answer) == f'<at user_id="ou_bob"></at> done: deploy {word}'

    # Feishu delivers the same press again: acknowledged, not answered again; a second press is a new message
    again = await post(platform, press)
    assert again.status_code == 200 and again.headers["x-agentbus-outcome"] == "duplicate"
    cancel = card_action_event(token=TOKEN, value=pressed(card, "Cancel"), open_message_id=card["message_id"],
                               open_chat_id=chat, operator="ou_bob")
    assert (await post(platform, cancel)).headers["x-agentbus-outcome"] == "published"
    await feishu.wait_for(lambda m: said(m).endswith(f"done: cancel {word}"))
    assert len([m for m in feishu.sent if said(m).endswith(f"done: deploy {word}")]) == 1

    # a malformed press is refused with its reason, and nothing is published
    broken = card_action_event(token=TOKEN, value={"label": "Deploy"}, open_message_id=card["message_id"],
                               open_chat_id=chat)
    bad = await post(platform, broken)
    assert bad.status_code == 400 and "action.value.value" in bad.text
    assert not feishu.rejected


async def test_an_image_in_a_post_reaches_the_model_once(platform: Platform, feishu: FakeFeishu, llm: FakeLLM) -> None:
    word, key = uuid.uuid4().hex[:6], f"img_v3_{uuid.uuid4().hex}"
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(7000)
    post_content = {"zh_cn": {"title": f"Build {word}", "content": [
        [{"tag": "text", "text": "what does this chart say?"}], [{"tag": "img", "image_key": key}]]}}
    event = message_event(token=TOKEN, text="", message_type="post", content=orjson.dumps(post_content).decode())
    message_id = event["event"]["message"]["message_id"]
    feishu.resources[(message_id, key)] = (png, "image/png", "image")
    r = await post(platform, event)
    assert r.status_code == 200 and r.headers["x-agentbus-outcome"] == "published", r.text
    again = await post(platform, event)  # Feishu redelivers the event (same event_id)
    assert again.status_code == 200 and again.headers["x-agentbus-outcome"] == "duplicate"
    [answer] = await feishu.wait_for(lambda m: m["reply_to"] == message_id)
    assert said(answer) == f"done: Build {word}\nwhat does this chart say?"
    [call] = calls_asking(llm, word)
    assert asked(call) == [{"type": "text", "text": f"Build {word}\nwhat does this chart say?"},
                           image_part(png, "image/png")]
    later = message_event(token=TOKEN, text=f"and then {word}")
    assert (await post(platform, later)).headers["x-agentbus-outcome"] == "published"
    await feishu.wait_for(lambda m: said(m) == f"done: and then {word}")  # after a second answer would have been
    assert len([m for m in feishu.sent if m["reply_to"] == message_id]) == 1 and not feishu.rejected
