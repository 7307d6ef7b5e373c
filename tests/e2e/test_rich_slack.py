"""Slack end to end with a card: the agent's reply arrives as Block Kit (buttons, an image), a press of a button
comes back as a signed interactivity request to the same Request URL and is answered once in the card's thread;
files shared in a message are downloaded with the bot token and reach a vision model (the image as its exact
bytes, the PDF as a note), answered once however often Slack retries the request."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, ImageBlock

from tests.fakes.slack import BOT_USER, FakeSlack, app_mention, event_callback, message, signed
from tests.fakes.slack_interactive import block_actions, blocks_problems, signed_form
from tests.support.card_model import card_script
from tests.support.modes import asked, calls_asking, image_part
from tests.support.platform import Infra, Platform, run_platform
from tests.support.servers import FakeLLM

pytestmark = pytest.mark.e2e

SECRET = "e2e-slack-rich-signing-secret"
BOT_TOKEN = "xoxb-e2e-rich-0000-token"
CARD = {"title": "Deploy v2?", "text": "The build passed.",
        "buttons": [{"label": "Ship it", "value": "deploy v2", "style": "primary"},
                    {"label": "Cancel", "value": "cancel", "style": "danger"}]}
CHART = {"url": "https://cdn.example.com/build-chart.png", "kind": "image", "name": "build chart"}


@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[FakeLLM]:
    f = await FakeLLM(script=card_script("release", CARD, "Shall I deploy?", (CHART,))).start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def slack() -> AsyncIterator[FakeSlack]:
    f = await FakeSlack({BOT_TOKEN}).start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, slack: FakeSlack, llm: FakeLLM) -> AsyncIterator[Platform]:
    config: dict[str, Any] = {
        "tenants": [{"id": "acme"}],
        "agents": [{"id": "assistant", "model": "fake", "tools": ["card", "attach"]}],
        "models": [{"name": "fake", "base_url": llm.base_url, "model": "fake-model", "timeout_s": 10,
                    "vision": True}],
        "channels": [{"id": "sl", "type": "slack", "tenant": "acme", "agent": "assistant", "api_base": slack.url,
                      "signing_secret": {"env": "E2E_SL_RICH_SECRET", "default": SECRET},
                      "bot_token": {"env": "E2E_SL_RICH_TOKEN", "default": BOT_TOKEN}, "reply_in_thread": True}],
    }
    async with run_platform(infra, config) as p:
        yield p


async def post(p: Platform, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as c:
        return await c.post(f"{p.ingress_url}/v1/webhooks/sl", content=body, headers=headers)


async def test_card_out_press_in_answered_once_in_the_thread(platform: Platform, slack: FakeSlack) -> None:
    ev = app_mention(f"<@{BOT_USER}> release now?")
    r = await post(platform, *signed(SECRET, event_callback(ev)))
    assert r.status_code == 200 and r.headers["x-agentbus-outcome"] == "published"
    [card_msg] = await slack.wait_for(lambda m: "blocks" in m)
    assert card_msg["thread_ts"] == ev["ts"] and card_msg["text"] == "<@U0ALICE001> Shall I deploy?"
    assert not blocks_problems(card_msg["blocks"])
    parsed = [Block.parse(b) for b in card_msg["blocks"]]
    [image] = [b for b in parsed if isinstance(b, ImageBlock)]
    assert image.image_url == CHART["url"] and image.alt_text == CHART["name"]
    [actions] = [b for b in parsed if isinstance(b, ActionsBlock)]
    assert [(e.text.text, e.value, e.style) for e in actions.elements if isinstance(e, ButtonElement)] == [
        ("Ship it", "deploy v2", "primary"), ("Cancel", "cancel", "danger")]

    # Bob presses "Ship it"; Slack's request is then delivered again
    press = block_actions(card_msg, "deploy v2", user="U0BOB00001")
    first = await post(platform, *signed_form(SECRET, press))
    assert first.status_code == 200 and first.content == b""
    assert first.headers["x-agentbus-outcome"] == "published"
    again = await post(platform, *signed_form(SECRET, press))
    assert again.status_code == 200 and again.headers["x-agentbus-outcome"] == "duplicate"
    [answer] = await slack.wait_for(lambda m: "answer: deploy v2" in m.get("text", ""))
    assert answer["channel"] == card_msg["channel"] and answer["thread_ts"] == ev["ts"]
    assert answer["text"] == "<@U0BOB00001> answer: deploy v2" and "blocks" not in answer
    forged_body, forged_headers = signed_form("not-the-secret", press)
    assert (await post(platform, forged_body, forged_headers)).status_code == 401
    broken = await post(platform, *signed_form(SECRET, {**press, "actions": []}))
    assert broken.status_code == 400
    assert len(slack.posted) == 2  # the card and the one answer to the press


async def test_shared_files_are_downloaded_and_reach_the_model_once(platform: Platform, slack: FakeSlack,
                                                                   llm: FakeLLM) -> None:
    word = uuid.uuid4().hex[:6]
    png, pdf = b"\x89PNG\r\n\x1a\n" + os.urandom(6000), b"%PDF-1.7\n" + os.urandom(3000)
    files = [slack.add_file(png, f"shot-{word}.png", "image/png"),
             slack.add_file(pdf, f"report-{word}.pdf", "application/pdf")]
    ev = message(f"what is in these {word}?", subtype="file_share", files=files)
    first = await post(platform, *signed(SECRET, event_callback(ev)))
    assert first.status_code == 200 and first.headers["x-agentbus-outcome"] == "published"
    again = await post(platform, *signed(SECRET, event_callback(ev), retry_num=1))  # Slack's retry
    assert again.status_code == 200 and again.headers["x-agentbus-outcome"] == "duplicate"
    [sent] = await slack.wait_for(lambda m: word in m.get("text", ""))
    text = f"what is in these {word}?\n[attachment: report-{word}.pdf, application/pdf, {len(pdf)} bytes]"
    assert sent["channel"] == "D0DIRECT01" and "thread_ts" not in sent and sent["text"] == f"answer: {text}"
    [call] = calls_asking(llm, word)
    assert asked(call) == [{"type": "text", "text": text}, image_part(png, "image/png")]
    later = uuid.uuid4().hex[:6]
    assert (await post(platform, *signed(SECRET, event_callback(message(f"next {later}"))))).status_code == 200
    await slack.wait_for(lambda m: later in m.get("text", ""))  # answered after a second answer would have been
    assert len([m for m in slack.posted if word in m.get("text", "")]) == 1
