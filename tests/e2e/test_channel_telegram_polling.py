"""Telegram in mode: stream end to end: getUpdates long polling by one of two ingress replicas, taken over by the
other when the holder is SIGKILLed, every update answered exactly once; a photo polled from the queue reaches a
vision model with its exact bytes, and a press of the agent's card (a ``callback_query`` update) is answered
once in the card's chat and its query answered with ``answerCallbackQuery``."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import telegram

from tests.fakes.telegram import BOT_ID, BOT_TOKEN, BOT_USERNAME, FakeTelegram, chat, mention_entities, update, user
from tests.fakes.telegram_rich import callback_query
from tests.support.card_model import card_script
from tests.support.modes import asked, calls_asking, image_part, stream_outcomes, until_grown
from tests.support.platform import Infra, Platform, run_platform
from tests.support.servers import FakeLLM

CARD = {"title": "Deploy v2?", "text": "The build passed.",
        "buttons": [{"label": "Ship it", "value": "deploy v2", "style": "primary"},
                    {"label": "Cancel", "value": "cancel", "style": "danger"}]}


@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[FakeLLM]:
    """Answers ``answer: <message>``, and a message with "release" with a card."""
    f = await FakeLLM(script=card_script("release", CARD, "Shall I deploy?")).start()
    yield f
    await f.stop()

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def tg() -> AsyncIterator[FakeTelegram]:
    f = await FakeTelegram().start()
    f.updates.webhook_url = "https://old.example.test/hook"  # switching to polling removes it
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, tg: FakeTelegram, llm: FakeLLM) -> AsyncIterator[Platform]:
    config: dict[str, Any] = {
        "tenants": [{"id": "acme"}],
        "agents": [{"id": "assistant", "model": "fake", "tools": ["card"]}],
        "models": [{"name": "fake", "base_url": llm.base_url, "model": "fake-model", "timeout_s": 10,
                    "vision": True}],
        "channels": [{
            "id": "tgpoll", "type": "telegram", "mode": "stream", "tenant": "acme", "agent": "assistant",
            "api_base": tg.url, "bot_token": {"env": "E2E_TG_TOKEN", "default": BOT_TOKEN},
            "bot_username": BOT_USERNAME, "poll_timeout_s": 2,
        }],
    }
    async with run_platform(infra, config, env={"AGENTBUS_INGRESS_LEASE_TTL_S": "3"}) as p:
        yield p


async def connection(port: int) -> dict[str, Any]:
    async with httpx.AsyncClient() as c:
        body = (await c.get(f"http://127.0.0.1:{port}/readyz")).json()
    return dict(body["connections"]["tgpoll"])


async def until_status(ports: list[int], status: str, timeout: float = 30.0) -> int:
    """The port of the replica whose connection shows ``status``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        for port in ports:
            try:
                if (await connection(port))["status"] == status:
                    return port
            except httpx.HTTPError:
                pass  # a killed replica
        if loop.time() > deadline:
            raise AssertionError(f"no replica shows {status!r}")
        await asyncio.sleep(0.2)


# these two run first, while one ingress polls: the last test of the module adds a replica and kills one

async def test_a_polled_photo_reaches_the_model_with_its_bytes(platform: Platform, tg: FakeTelegram,
                                                               llm: FakeLLM) -> None:
    await until_status([platform.stack.ports.services["ingress"]], "connected")
    word = uuid.uuid4().hex[:6]
    jpeg = b"\xff\xd8\xff\xe0" + os.urandom(30_000)
    big = tg.add_file(jpeg, f"photos/file_{word}.jpg")
    small = tg.add_file(b"\xff\xd8\xff\xe0thumbnail", f"photos/thumb_{word}.jpg")
    sizes = [{"file_id": small, "file_unique_id": f"s{word}", "file_size": 900, "width": 90, "height": 67},
             {"file_id": big, "file_unique_id": f"l{word}", "file_size": len(jpeg), "width": 1280, "height": 960}]
    before, downloads = await stream_outcomes(platform.ingress_url, "tgpoll"), tg.file_downloads
    tg.updates.push(update(None, caption=f"what is in it {word}?", photo=sizes))
    [sent] = await tg.wait_for(lambda m: word in m["text"])
    assert sent["chat_id"] == 42 and sent["text"] == f"answer: what is in it {word}?"
    await until_grown(platform.ingress_url, "tgpoll", before, {"published": 1})
    assert tg.file_downloads == downloads + 1  # the largest size only
    [call] = calls_asking(llm, word)
    assert asked(call) == [{"type": "text", "text": f"what is in it {word}?"}, image_part(jpeg, "image/jpeg")]


async def test_a_card_press_polled_from_the_queue_is_answered_once(platform: Platform, tg: FakeTelegram,
                                                                   llm: FakeLLM) -> None:
    await until_status([platform.stack.ports.services["ingress"]], "connected")
    word = uuid.uuid4().hex[:6]
    text = f"@{BOT_USERNAME} release {word}?"
    tg.updates.push(update(text, chat_=chat(-555, "group"), entities=mention_entities(text, BOT_USERNAME)))
    [card] = await tg.wait_for(lambda m: "reply_markup" in m and m["chat_id"] == -555)
    assert card["plain"] == "Shall I deploy?\n\nDeploy v2?\n\nThe build passed."
    markup = telegram.InlineKeyboardMarkup.de_json(card["reply_markup"], None)
    assert markup is not None
    assert [(b.text, b.callback_data) for row in markup.inline_keyboard for b in row] == [
        ("Ship it", "deploy v2"), ("Cancel", "cancel")]

    # Bob presses "Ship it"; the same update comes twice (as after a confirmation lost with a dying poller)
    press = callback_query(card, "deploy v2", presser=user(43, "Bob", "bob"),
                           bot=user(BOT_ID, "Agentbus", BOT_USERNAME, True))
    before = await stream_outcomes(platform.ingress_url, "tgpoll")
    tg.updates.push(press, press)
    [answer] = await tg.wait_for(lambda m: m["text"] == "answer: deploy v2")
    assert answer["chat_id"] == -555 and "reply_markup" not in answer
    await until_grown(platform.ingress_url, "tgpoll", before, {"published": 1, "duplicate": 1})
    qid = press["callback_query"]["id"]
    assert [a["callback_query_id"] for a in tg.answered if a["callback_query_id"] == qid] == [qid]
    later = f"@{BOT_USERNAME} then {word}"
    tg.updates.push(update(later, chat_=chat(-555, "group"), entities=mention_entities(later, BOT_USERNAME)))
    await tg.wait_for(lambda m: m["text"] == f"answer: then {word}")  # after a second answer would have been
    assert len([m for m in tg.sent if m["text"] == "answer: deploy v2"]) == 1
    assert len([c for c in llm.calls if asked(c) == "deploy v2"]) == 1


async def test_polling_replies_once_and_survives_the_holders_death(platform: Platform, tg: FakeTelegram) -> None:
    await platform.stack.start_replica("ingress", "b")
    ports = [platform.stack.ports.services["ingress"], platform.stack.replica_ports["ingress-b"]]
    holder = await until_status(ports, "connected")
    other = next(p for p in ports if p != holder)
    assert (await connection(other))["status"] == "held elsewhere"
    assert tg.updates.webhook_url == ""

    # the webhook route of a stream channel is refused: events come over the connection only
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{platform.ingress_url}/v1/webhooks/tgpoll", json=update("hi"))
    assert r.status_code == 409 and "long connection" in r.json()["error"]

    word = uuid.uuid4().hex[:6]
    tg.updates.push(update(f"before {word}"))
    await tg.wait_for(lambda m: f"before {word}" in m["text"])

    # SIGKILL the holder while updates keep coming: the other replica takes the connection over
    proc = next(p for name, p in platform.procs.items()
                if name.startswith("ingress") and (platform.stack.replica_ports.get(name) or
                                                   platform.stack.ports.services["ingress"]) == holder)
    await proc.kill()
    texts = [f"during {word} {i}" for i in range(5)]
    for t in texts:
        tg.updates.push(update(t))
    assert await until_status([other], "connected") == other
    for t in texts:
        await tg.wait_for(lambda m, t=t: t in m["text"], timeout=60)
    await asyncio.sleep(1.0)  # a second answer to any of them would have arrived by now
    sent = [m["text"] for m in tg.sent if word in m["text"]]
    assert sorted(sent) == sorted(f"answer: {t}" for t in [f"before {word}", *texts])
    assert tg.updates.unconfirmed() == []
    detail = await connection(other)
    assert detail["held_here"] and detail["events"] >= 5
