"""A card end to end on DingTalk: the model's card reaches the local DingTalk as an ActionCard, and pressing a
button (the person's client sends the button's link content as their message) is answered once in the chat; a
file sent to the robot is downloaded (downloadCode to a download URL) and reaches the model as a note with its
name, type and downloaded size, answered once across DingTalk's retry."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest

from tests.e2e.test_rich_webhook import model
from tests.fakes.dingtalk import FakeDingTalk, robot_headers, robot_message
from tests.support.modes import asked, calls_asking
from tests.support.platform import Infra, Platform, run_platform
from tests.support.servers import FakeLLM

pytestmark = pytest.mark.e2e

APP_KEY, APP_SECRET = "dingappkey-rich", "app-secret-rich"


@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[FakeLLM]:
    f = await FakeLLM(script=model).start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def ding() -> AsyncIterator[FakeDingTalk]:
    f = await FakeDingTalk(app_key=APP_KEY, app_secret=APP_SECRET).start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, llm: FakeLLM, ding: FakeDingTalk) -> AsyncIterator[Platform]:
    config: dict[str, Any] = {
        "tenants": [{"id": "acme"}],
        "agents": [{"id": "assistant", "model": "fake", "tools": ["card", "attach"],
                    "memory": {"history_turns": 5, "recall_top_k": 0}}],
        "models": [{"name": "fake", "base_url": llm.base_url, "model": "fake-model", "timeout_s": 10}],
        "channels": [{"id": "ding", "type": "dingtalk", "tenant": "acme", "agent": "assistant",
                      "app_key": {"env": "E2E_RICH_DING_KEY", "default": APP_KEY},
                      "app_secret": {"env": "E2E_RICH_DING_SECRET", "default": APP_SECRET},
                      "api_base_url": ding.url, "oapi_base_url": ding.url}],
        "jobs": [],
    }
    async with run_platform(infra, config) as p:
        yield p


async def post(p: Platform, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient() as c:
        return await c.post(f"{p.ingress_url}/v1/webhooks/ding", content=orjson.dumps(body),
                            headers=robot_headers(APP_SECRET))


async def test_an_action_card_goes_out_and_a_press_is_answered_once(platform: Platform, ding: FakeDingTalk) -> None:
    conv = f"cidRich{uuid.uuid4().hex[:8]}=="
    session, expires = ding.new_session()
    asked = robot_message("Book a room please", conversation_id=conv, session_webhook=session, expires_ms=expires)
    assert (await post(platform, asked)).headers["x-agentbus-outcome"] == "published"
    [card] = await ding.wait_for(lambda m: m["msgtype"] == "actionCard" and m["via"] == "session")
    assert card["title"] == "Room 4" and card["text"].startswith("Shall I book room 4?")
    [image] = await ding.wait_for(lambda m: m["msgtype"] == "markdown")
    assert image["images"] == ["https://files.example.com/plan.png"]
    yes_title, yes_url = card["buttons"][0]
    assert yes_title == "Yes"

    # pressing Yes: the client sends the content of the button's dtmd link as the person's message
    url = urlsplit(yes_url)
    [value] = parse_qs(url.query)["content"]
    press = robot_message(value, conversation_id=conv, session_webhook=session, expires_ms=expires)
    assert (await post(platform, press)).headers["x-agentbus-outcome"] == "published"
    assert (await post(platform, press)).headers["x-agentbus-outcome"] == "duplicate"  # DingTalk retries it
    await ding.wait_for(lambda m: m["text"] == "Done: book room 4.")
    # a later message is answered after the press, so a second answer to the press would be here by now
    later = robot_message("thanks", conversation_id=conv, session_webhook=session, expires_ms=expires)
    assert (await post(platform, later)).status_code == 200
    await ding.wait_for(lambda m: m["text"] == "answer: thanks")
    assert [m["text"] for m in ding.sent if m["msgtype"] == "text"] == ["Done: book room 4.", "answer: thanks"]
    assert not ding.rejected


async def test_a_file_is_downloaded_and_reaches_the_model_once(platform: Platform, ding: FakeDingTalk,
                                                              llm: FakeLLM) -> None:
    word = uuid.uuid4().hex[:6]
    pdf = b"%PDF-1.7\n" + os.urandom(5000)
    session, expires = ding.new_session()
    msg = robot_message("", msgtype="file", conversation_id=f"cidFile{word}==", session_webhook=session,
                        expires_ms=expires, robot_code=APP_KEY)
    msg["content"] = {"downloadCode": ding.add_media(pdf, "application/pdf"), "fileName": f"report-{word}.pdf"}
    assert (await post(platform, msg)).headers["x-agentbus-outcome"] == "published"
    assert (await post(platform, msg)).headers["x-agentbus-outcome"] == "duplicate"  # DingTalk retries it
    # the type and size are known from the download only: the message itself names neither
    note = f"[attachment: report-{word}.pdf, application/pdf, {len(pdf)} bytes]"
    [sent] = await ding.wait_for(lambda m: word in m["text"])
    assert sent["via"] == "session" and sent["text"] == f"answer: {note}"
    [call] = calls_asking(llm, word)
    assert asked(call) == note
    later = robot_message(f"thanks {word}", conversation_id=f"cidFile{word}==", session_webhook=session,
                          expires_ms=expires, robot_code=APP_KEY)
    assert (await post(platform, later)).headers["x-agentbus-outcome"] == "published"
    await ding.wait_for(lambda m: m["text"] == f"answer: thanks {word}")  # after a second answer would have been
    assert len([m for m in ding.sent if m["text"] == f"answer: {note}"]) == 1 and not ding.rejected
