"""DingTalk in mode: stream end to end: robot messages pushed over the fake Stream gateway, acknowledged once
published, answered exactly once through egress's session webhook path at the fake DingTalk; a picture pushed
over the stream reaches a vision model with its exact bytes, and the agent's card goes out as an ActionCard
whose press (the person's client sends the button's value as their message, over the stream) is answered once."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.fakes.dingtalk import FakeDingTalk, robot_headers, robot_message
from tests.fakes.dingtalk_stream import ROBOT_TOPIC, FakeDingTalkStream
from tests.support.card_model import card_script
from tests.support.modes import asked, calls_asking, image_part, stream_outcomes, until_grown
from tests.support.platform import Infra, Platform, run_platform
from tests.support.servers import FakeLLM

pytestmark = pytest.mark.e2e

APP_KEY, APP_SECRET = "dingappkey-e2e", "app-secret-e2e"
CARD = {"title": "Deploy v2?", "text": "The build passed.",
        "buttons": [{"label": "Ship it", "value": "deploy v2", "style": "primary"},
                    {"label": "Cancel", "value": "cancel", "style": "danger"}]}


@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[FakeLLM]:
    """Answers ``answer: <message>``, and a message with "release" with a card."""
    f = await FakeLLM(script=card_script("release", CARD, "Shall I deploy?")).start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def ding() -> AsyncIterator[FakeDingTalk]:
    f = await FakeDingTalk(app_key=APP_KEY, app_secret=APP_SECRET).start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def gateway() -> AsyncIterator[FakeDingTalkStream]:
    f = await FakeDingTalkStream(APP_KEY, APP_SECRET).start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def platform(
    infra: Infra, llm: FakeLLM, ding: FakeDingTalk, gateway: FakeDingTalkStream
) -> AsyncIterator[Platform]:
    config: dict[str, Any] = {
        "tenants": [{"id": "acme"}],
        "agents": [{"id": "assistant", "model": "fake", "tools": ["card"]}],
        "models": [{"name": "fake", "base_url": llm.base_url, "model": "fake-model", "timeout_s": 10,
                    "vision": True}],
        "channels": [{
            "id": "dingstream", "type": "dingtalk", "mode": "stream", "tenant": "acme", "agent": "assistant",
            "app_key": {"env": "E2E_DING_KEY", "default": APP_KEY},
            "app_secret": {"env": "E2E_DING_SECRET", "default": APP_SECRET},
            "stream_base_url": gateway.url, "api_base_url": ding.url, "oapi_base_url": ding.url,
        }],
    }
    async with run_platform(infra, config) as p:
        yield p


async def connection(port: int) -> dict[str, Any]:
    async with httpx.AsyncClient() as c:
        body = (await c.get(f"http://127.0.0.1:{port}/readyz")).json()
    return dict(body["connections"]["dingstream"])


async def until_connected(port: int, timeout: float = 30.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (detail := await connection(port))["status"] != "connected":
        if loop.time() > deadline:
            raise AssertionError(f"not connected: {detail!r}")
        await asyncio.sleep(0.2)
    return detail


async def test_stream_message_is_acked_after_publish_and_answered_once(
    platform: Platform, ding: FakeDingTalk, gateway: FakeDingTalkStream
) -> None:
    port = platform.stack.ports.services["ingress"]
    await until_connected(port)
    link = await gateway.wait_link()
    assert gateway.opens[0]["subscriptions"] == [{"type": "CALLBACK", "topic": ROBOT_TOPIC}]

    # the webhook route of a stream channel is refused: messages come over the connection only
    word = uuid.uuid4().hex[:6]
    session, expires = ding.new_session()
    msg = robot_message(f"你好 {word}", session_webhook=session, expires_ms=expires,
                        msg_id=f"msg{uuid.uuid4().hex}", robot_code=APP_KEY)
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{platform.ingress_url}/v1/webhooks/dingstream", json=msg,
                         headers=robot_headers(APP_SECRET))
    assert r.status_code == 409 and "long connection" in r.json()["error"]

    mid = await gateway.push_robot_message(msg, link)
    await gateway.wait(lambda: mid in gateway.acked)
    assert gateway.answer_to(mid)["code"] == 200  # type: ignore[index]
    [sent] = await ding.wait_for(lambda m: word in m["text"])
    assert sent["via"] == "session" and sent["text"] == f"answer: 你好 {word}"

    # DingTalk pushes the same message again (as after a lost ack): acknowledged, not answered twice
    again = await gateway.push_robot_message(msg, link)
    await gateway.wait(lambda: again in gateway.acked)
    later = f"later {uuid.uuid4().hex[:6]}"
    await gateway.push_robot_message(robot_message(later, session_webhook=session, expires_ms=expires,
                                                   robot_code=APP_KEY), link)
    await ding.wait_for(lambda m: later in m["text"])  # answered after the duplicate would have been
    assert [m["text"] for m in ding.sent if word in m["text"]] == [f"answer: 你好 {word}"]
    assert not gateway.pending

    detail = await connection(port)
    assert detail["status"] == "connected" and detail["held_here"] and detail["events"] >= 3


async def test_a_picture_over_the_stream_reaches_the_model_with_its_bytes(
    platform: Platform, ding: FakeDingTalk, gateway: FakeDingTalkStream, llm: FakeLLM
) -> None:
    await until_connected(platform.stack.ports.services["ingress"])
    word = uuid.uuid4().hex[:6]
    jpeg = b"\xff\xd8\xff\xe0" + os.urandom(20_000)
    session, expires = ding.new_session()
    msg = robot_message("", msgtype="richText", session_webhook=session, expires_ms=expires, robot_code=APP_KEY)
    msg["content"] = {"richText": [{"text": f"what is on it {word}?"},
                                   {"type": "picture", "downloadCode": ding.add_media(jpeg, "image/jpeg")}]}
    before = await stream_outcomes(platform.ingress_url, "dingstream")
    mid = await gateway.push_robot_message(msg)
    await gateway.wait(lambda: mid in gateway.acked)
    await until_grown(platform.ingress_url, "dingstream", before, {"published": 1})
    [sent] = await ding.wait_for(lambda m: word in m["text"])
    assert sent["via"] == "session" and sent["text"] == f"answer: what is on it {word}?"
    [call] = calls_asking(llm, word)
    assert asked(call) == [{"type": "text", "text": f"what is on it {word}?"}, image_part(jpeg, "image/jpeg")]
    assert not ding.rejected


async def test_a_card_press_over_the_stream_is_answered_once(
    platform: Platform, ding: FakeDingTalk, gateway: FakeDingTalkStream, llm: FakeLLM
) -> None:
    await until_connected(platform.stack.ports.services["ingress"])
    word, conv = uuid.uuid4().hex[:6], f"cidStream{uuid.uuid4().hex[:8]}=="
    session, expires = ding.new_session()

    def said(text: str) -> dict[str, Any]:
        return robot_message(text, conversation_id=conv, session_webhook=session, expires_ms=expires,
                             robot_code=APP_KEY)

    await gateway.push_robot_message(said(f"release {word}?"))
    [card] = await ding.wait_for(lambda m: m["msgtype"] == "actionCard" and m["via"] == "session")
    assert card["title"] == "Deploy v2?" and card["text"].startswith("Shall I deploy?")
    assert [title for title, _ in card["buttons"]] == ["Ship it", "Cancel"]

    # pressing "Ship it": the client sends the content of the button's dtmd link as the person's message,
    # which comes over the stream like any other; DingTalk then pushes it again (its ack went missing)
    [value] = parse_qs(urlsplit(card["buttons"][0][1]).query)["content"]
    press = said(value)
    before = await stream_outcomes(platform.ingress_url, "dingstream")
    first = await gateway.push_robot_message(press)
    await gateway.wait(lambda: first in gateway.acked)
    again = await gateway.push_robot_message(press)
    await gateway.wait(lambda: again in gateway.acked)
    await until_grown(platform.ingress_url, "dingstream", before, {"published": 1, "duplicate": 1})
    await ding.wait_for(lambda m: m["text"] == "answer: deploy v2")
    await gateway.push_robot_message(said(f"then {word}"))
    await ding.wait_for(lambda m: m["text"] == f"answer: then {word}")  # after a second answer would have been
    assert [m["text"] for m in ding.sent if m["text"] == "answer: deploy v2"] == ["answer: deploy v2"]
    assert len([c for c in llm.calls if asked(c) == "deploy v2"]) == 1
    assert not gateway.pending and not ding.rejected
