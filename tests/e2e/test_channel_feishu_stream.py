"""Feishu in mode: stream end to end: ingress holds the long connection to a fake gateway (lark-oapi's pbbp2
framing over a real WebSocket), a pushed message is answered once through egress, its retry is not; an image
pushed over the socket reaches a vision model with its exact bytes, and a press of the agent's card (a
``card.action.trigger`` frame) gets its toast in the frame's answer and is answered once as a reply to the card."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from tests.fakes.feishu import FakeFeishu, mention, message_event
from tests.fakes.feishu_rich import card_action_event, card_problem, pressed
from tests.fakes.feishu_ws import FakeFeishuGateway
from tests.support.card_model import card_script
from tests.support.modes import asked, image_part, stream_outcomes, until_grown
from tests.support.platform import Infra, Platform, run_platform
from tests.support.servers import FakeLLM

pytestmark = pytest.mark.e2e

APP_ID, APP_SECRET = "cli_e2e_stream", "e2e-stream-secret"
BOT = "ou_e2e_stream_bot"
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
async def feishu() -> AsyncIterator[tuple[FakeFeishu, FakeFeishuGateway]]:
    im = await FakeFeishu({APP_ID: APP_SECRET}).start()
    assert im.server is not None
    gateway = await FakeFeishuGateway({APP_ID: APP_SECRET}).start(on=im.server)  # one host, as on Feishu
    yield im, gateway
    await gateway.stop()
    await im.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, feishu: tuple[FakeFeishu, FakeFeishuGateway], llm: FakeLLM) -> AsyncIterator[Platform]:
    im, _ = feishu
    config: dict[str, Any] = {
        "tenants": [{"id": "acme"}],
        "agents": [{"id": "assistant", "model": "fake", "tools": ["card"]}],
        "models": [{"name": "fake", "base_url": llm.base_url, "model": "fake-model", "timeout_s": 10,
                    "vision": True}],
        "channels": [{
            "id": "fsws", "type": "feishu", "mode": "stream", "tenant": "acme", "agent": "assistant",
            "api_base": im.url,
            "app_id": {"env": "E2E_FSWS_APP_ID", "default": APP_ID},
            "app_secret": {"env": "E2E_FSWS_APP_SECRET", "default": APP_SECRET},
            "bot_open_id": BOT,
        }],
    }
    async with run_platform(infra, config, env={"AGENTBUS_INGRESS_LEASE_TTL_S": "3"}) as p:
        yield p


async def connection(p: Platform) -> dict[str, Any]:
    async with httpx.AsyncClient() as c:
        body = (await c.get(f"{p.ingress_url}/readyz")).json()
    return dict(body["connections"]["fsws"])


async def until_connected(p: Platform, timeout: float = 30.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        detail = await connection(p)
        if detail["status"] == "connected":
            return detail
        if loop.time() > deadline:
            raise AssertionError(f"the Feishu connection is not up: {detail}")
        await asyncio.sleep(0.2)


async def test_long_connection_replies_once(platform: Platform, feishu: tuple[FakeFeishu, FakeFeishuGateway]) -> None:
    im, gateway = feishu
    await until_connected(platform)
    await gateway.wait_connected()

    # the webhook route of a stream channel is refused: events come over the connection only
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{platform.ingress_url}/v1/webhooks/fsws", json={"schema": "2.0"})
    assert r.status_code == 409 and "long connection" in r.json()["error"]

    word = uuid.uuid4().hex[:6]
    event = message_event(token="unused-in-stream-mode", text=f"你好 over the socket {word}")
    first = await gateway.push(event)
    [sent] = await im.wait_for(lambda m: word in m["content_json"].get("text", ""))
    assert sent["content_json"]["text"] == f"answer: 你好 over the socket {word}"
    assert sent["reply_to"] == event["event"]["message"]["message_id"]
    await gateway.wait_acks(1)
    assert [(a.message_id, a.code) for a in gateway.acks] == [(first, 200)]  # answered once it was on the broker

    # Feishu pushes the same event again (say the answer was lost): answered, not published twice
    retry = await gateway.push(event)
    await gateway.wait_acks(2)
    assert gateway.acks[1].message_id == retry and gateway.acks[1].code == 200
    other = message_event(token="unused-in-stream-mode", text=f"second {word}")
    await gateway.push(other)
    await im.wait_for(lambda m: f"second {word}" in m["content_json"].get("text", ""))
    assert len([m for m in im.sent if word in m["content_json"].get("text", "")]) == 2
    detail = await connection(platform)
    assert detail["status"] == "connected" and detail["held_here"] and detail["events"] >= 3
    assert gateway.pings and not im.rejected


def said(m: dict[str, Any]) -> str:
    return str(m["content_json"].get("text", ""))


async def test_an_image_over_the_socket_reaches_the_model_with_its_bytes(
        platform: Platform, feishu: tuple[FakeFeishu, FakeFeishuGateway], llm: FakeLLM) -> None:
    im, gateway = feishu
    await until_connected(platform)
    key, png = f"img_v3_{uuid.uuid4().hex}", b"\x89PNG\r\n\x1a\n" + os.urandom(5000)
    event = message_event(token="unused-in-stream-mode", text="", message_type="image",
                          content=orjson.dumps({"image_key": key}).decode())
    message_id = event["event"]["message"]["message_id"]
    im.resources[(message_id, key)] = (png, "image/png", "image")
    before = await stream_outcomes(platform.ingress_url, "fsws")
    pushed = await gateway.push(event)
    [sent] = await im.wait_for(lambda m: m["reply_to"] == message_id)
    assert said(sent) == "answer: "  # an image alone: no words to echo, the image went to the model
    await until_grown(platform.ingress_url, "fsws", before, {"published": 1})
    assert any(a.message_id == pushed and a.code == 200 for a in gateway.acks)
    [call] = [c for c in llm.calls if isinstance(asked(c), list) and image_part(png, "image/png") in asked(c)]
    assert asked(call) == [image_part(png, "image/png")]
    assert len([m for m in im.sent if m["reply_to"] == message_id]) == 1 and not im.rejected


async def test_a_card_press_over_the_socket_is_answered_once(
        platform: Platform, feishu: tuple[FakeFeishu, FakeFeishuGateway], llm: FakeLLM) -> None:
    im, gateway = feishu
    await until_connected(platform)
    word, chat = uuid.uuid4().hex[:6], f"oc_{uuid.uuid4().hex[:8]}"
    ask = message_event(token="unused-in-stream-mode", text=f"@_user_1 release {word}?", chat_type="group",
                        chat_id=chat, mentions=[mention("@_user_1", BOT, "助手", "bot")])
    await gateway.push(ask)
    [card] = await im.wait_for(lambda m: m["msg_type"] == "interactive"
                               and m["reply_to"] == ask["event"]["message"]["message_id"])
    assert card_problem(card["content_json"]) is None
    buttons = [el for el in card["content_json"]["body"]["elements"] if el.get("tag") == "button"]
    assert [(b["text"]["content"], b["type"]) for b in buttons] == [("Ship it", "primary"), ("Cancel", "danger")]

    # Bob presses "Ship it": the callback comes as an event frame; once it was answered, Feishu pushes it again
    # (as when that answer was lost), as a card frame
    press = card_action_event(token="unused-in-stream-mode", value=pressed(card, "Ship it"),
                              open_message_id=card["message_id"], open_chat_id=chat, operator="ou_bob")
    before = await stream_outcomes(platform.ingress_url, "fsws")
    first = await gateway.push(press)
    await asyncio.wait_for(_until(lambda: first in {a.message_id for a in gateway.acks}), 15)
    again = await gateway.push(press, kind="card")
    await asyncio.wait_for(_until(lambda: again in {a.message_id for a in gateway.acks}), 15)
    await until_grown(platform.ingress_url, "fsws", before, {"published": 1, "duplicate": 1})
    toasts = {a.message_id: (a.code, a.data) for a in gateway.acks if a.message_id in (first, again)}
    assert toasts == {first: (200, {"toast": {"type": "info", "content": "✓ Ship it"}}),
                      again: (200, {"toast": {"type": "info", "content": "✓ Ship it"}})}
    [answer] = await im.wait_for(lambda m: said(m).endswith("answer: deploy v2"))
    assert answer["reply_to"] == card["message_id"] and said(answer) == '<at user_id="ou_bob"></at> answer: deploy v2'
    later = message_event(token="unused-in-stream-mode", text=f"@_user_1 then {word}", chat_type="group",
                          chat_id=chat, mentions=[mention("@_user_1", BOT, "助手", "bot")])
    await gateway.push(later)
    await im.wait_for(lambda m: said(m).endswith(f"answer: then {word}"))  # after a second answer would have been
    assert len([m for m in im.sent if said(m).endswith("answer: deploy v2")]) == 1
    assert len([c for c in llm.calls if asked(c) == "deploy v2"]) == 1 and not im.rejected


async def _until(cond: Any) -> None:
    """Wait until ``cond()`` holds (the caller bounds the wait)."""
    while not cond():
        await asyncio.sleep(0.05)
