"""Slack in mode: stream end to end: Socket Mode through ingress's supervisor, reply by chat.postMessage, one
answer per message however often Slack redelivers it, and a dropped socket reopened on its own; a file shared
over the socket reaches a vision model with its exact bytes, and a press of the agent's card arrives in an
``interactive`` envelope and is answered once in the card's thread."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement

from tests.fakes.slack import BOT_USER, FakeSlack, app_mention, event_callback, message
from tests.fakes.slack_interactive import block_actions, blocks_problems
from tests.fakes.slack_socket import FakeSlackSocket
from tests.support.card_model import card_script
from tests.support.modes import asked, calls_asking, grew, image_part, stream_outcomes
from tests.support.platform import Infra, Platform, run_platform
from tests.support.servers import FakeLLM

pytestmark = pytest.mark.e2e

APP_TOKEN = "xapp-1-A0APP00001-e2e-token"
BOT_TOKEN = "xoxb-e2e-0000-token"
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
async def slack() -> AsyncIterator[FakeSlack]:
    f = await FakeSlack({BOT_TOKEN}).start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def gateway(slack: FakeSlack) -> AsyncIterator[FakeSlackSocket]:
    g = await FakeSlackSocket({APP_TOKEN}, web_api=slack.url).start()
    yield g
    await g.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, gateway: FakeSlackSocket, llm: FakeLLM) -> AsyncIterator[Platform]:
    config: dict[str, Any] = {
        "tenants": [{"id": "acme"}],
        "agents": [{"id": "assistant", "model": "fake", "tools": ["card"]}],
        "models": [{"name": "fake", "base_url": llm.base_url, "model": "fake-model", "timeout_s": 10,
                    "vision": True}],
        "channels": [{
            "id": "slsock", "type": "slack", "mode": "stream", "tenant": "acme", "agent": "assistant",
            "api_base": gateway.url, "app_token": {"env": "E2E_SL_APP", "default": APP_TOKEN},
            "bot_token": {"env": "E2E_SL_TOKEN", "default": BOT_TOKEN}, "reply_in_thread": True,
        }],
    }
    async with run_platform(infra, config) as p:
        yield p


async def connection(p: Platform) -> dict[str, Any]:
    async with httpx.AsyncClient() as c:
        body = (await c.get(f"http://127.0.0.1:{p.stack.ports.services['ingress']}/readyz")).json()
    return dict(body["connections"]["slsock"])


async def until_connected(p: Platform, reconnects: int = 0, timeout: float = 30.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        state = await connection(p)
        if state["status"] == "connected" and state["reconnects"] >= reconnects:
            return state
        if loop.time() > deadline:
            raise AssertionError(f"connection not back: {state}")
        await asyncio.sleep(0.2)


async def test_socket_mode_reply_once_and_reconnect(platform: Platform, gateway: FakeSlackSocket,
                                                    slack: FakeSlack) -> None:
    await until_connected(platform)
    link = await gateway.wait_link()

    word = uuid.uuid4().hex[:6]
    payload = event_callback(app_mention(f"<@{BOT_USER}> stream {word}"))
    first = await gateway.push(payload, link=link)
    await gateway.wait(lambda: gateway.acked(first))
    [sent] = await slack.wait_for(lambda m: word in m.get("text", ""))
    assert sent["channel"] == "C0GENERAL1" and sent["thread_ts"] == payload["event"]["ts"]
    assert sent["text"] == f"<@U0ALICE001> answer: stream {word}"

    # Slack redelivers the same event (its ack went missing): acknowledged again, answered no second time
    again = await gateway.push(payload, link=link, retry_attempt=1, retry_reason="timeout")
    await gateway.wait(lambda: gateway.acked(again))

    # the socket is cut without a close frame: the supervisor opens a new one and messages flow again
    gateway.drop(link)
    await until_connected(platform, reconnects=1)
    second = uuid.uuid4().hex[:6]
    pushed = await gateway.push(event_callback(app_mention(f"<@{BOT_USER}> after {second}")))
    await gateway.wait(lambda: gateway.acked(pushed))
    await slack.wait_for(lambda m: second in m.get("text", ""))
    assert len([m for m in slack.posted if word in m.get("text", "")]) == 1
    state = await connection(platform)
    assert state["events"] >= 3 and gateway.opened >= 2


async def test_a_file_shared_over_the_socket_reaches_the_model_with_its_bytes(
        platform: Platform, gateway: FakeSlackSocket, slack: FakeSlack, llm: FakeLLM) -> None:
    await until_connected(platform)
    word = uuid.uuid4().hex[:6]
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(4000)
    shot = slack.add_file(png, f"shot-{word}.png", "image/png")
    ev = message(f"what is on it {word}?", subtype="file_share", files=[shot])
    before = await stream_outcomes(platform.ingress_url, "slsock")
    envelope = await gateway.push(event_callback(ev))
    await gateway.wait(lambda: gateway.acked(envelope))
    assert grew(before, await stream_outcomes(platform.ingress_url, "slsock")) == {"published": 1}
    [sent] = await slack.wait_for(lambda m: word in m.get("text", ""))
    assert sent["channel"] == "D0DIRECT01" and "thread_ts" not in sent  # a direct message: no thread
    assert sent["text"] == f"answer: what is on it {word}?"
    [call] = calls_asking(llm, word)
    assert asked(call) == [{"type": "text", "text": f"what is on it {word}?"}, image_part(png, "image/png")]

    again = await gateway.push(event_callback(ev), retry_attempt=1, retry_reason="timeout")
    await gateway.wait(lambda: gateway.acked(again))
    later = uuid.uuid4().hex[:6]
    await gateway.push(event_callback(message(f"next {later}")))
    await slack.wait_for(lambda m: later in m.get("text", ""))  # answered after a second answer would have been
    assert len([m for m in slack.posted if word in m.get("text", "")]) == 1 and len(calls_asking(llm, word)) == 1


async def test_a_card_press_over_the_socket_is_answered_once_in_the_thread(
        platform: Platform, gateway: FakeSlackSocket, slack: FakeSlack, llm: FakeLLM) -> None:
    await until_connected(platform)
    word = uuid.uuid4().hex[:6]
    ev = app_mention(f"<@{BOT_USER}> release {word}?")
    pushed = await gateway.push(event_callback(ev))
    await gateway.wait(lambda: gateway.acked(pushed))
    [card] = await slack.wait_for(lambda m: "blocks" in m and m.get("thread_ts") == ev["ts"])
    assert card["channel"] == "C0GENERAL1" and card["text"] == "<@U0ALICE001> Shall I deploy?"
    assert not blocks_problems(card["blocks"])
    [actions] = [b for b in (Block.parse(b) for b in card["blocks"]) if isinstance(b, ActionsBlock)]
    assert [(e.text.text, e.value) for e in actions.elements if isinstance(e, ButtonElement)] == [
        ("Ship it", "deploy v2"), ("Cancel", "cancel")]

    # Bob presses "Ship it": Slack sends the interactivity payload in an interactive envelope, then again
    press = block_actions(card, "deploy v2", user="U0BOB00001")
    before = await stream_outcomes(platform.ingress_url, "slsock")
    first = await gateway.push(press, kind="interactive")
    await gateway.wait(lambda: gateway.acked(first))
    assert grew(before, await stream_outcomes(platform.ingress_url, "slsock")) == {"published": 1}
    again = await gateway.push(press, kind="interactive")
    await gateway.wait(lambda: gateway.acked(again))
    assert grew(before, await stream_outcomes(platform.ingress_url, "slsock")) == {"published": 1, "duplicate": 1}
    [answer] = await slack.wait_for(lambda m: m.get("text") == "<@U0BOB00001> answer: deploy v2")
    assert answer["channel"] == "C0GENERAL1" and answer["thread_ts"] == ev["ts"] and "blocks" not in answer
    later = uuid.uuid4().hex[:6]
    await gateway.push(event_callback(app_mention(f"<@{BOT_USER}> then {later}", thread_ts=ev["ts"])))
    await slack.wait_for(lambda m: later in m.get("text", ""))  # answered after a second answer would have been
    assert len([m for m in slack.posted if m.get("text", "").endswith("answer: deploy v2")]) == 1
    assert len([c for c in llm.calls if asked(c) == "deploy v2"]) == 1
