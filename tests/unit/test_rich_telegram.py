"""Telegram cards, files and presses over real HTTP against the local Bot API, checked with python-telegram-bot.

The inline keyboard egress sends is parsed by the official library's ``InlineKeyboardMarkup``, the press
updates the fake builds by its ``Update``, and the library itself calls sendPhoto and answerCallbackQuery on
the fake, so the fake's checks are those the official client is written against.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import telegram

from agentbus.channeltypes.telegram import TelegramChannel
from agentbus.events import Attachment, Button, Card, Chat, ReplyGeneratedData
from agentbus.httpclient import async_client
from agentbus.services.egress.channels.base import TokenCache
from agentbus.services.egress.channels.telegram import TelegramOutbound
from agentbus.services.egress.ports import Retryable
from agentbus.services.ingress.accept import Outcome, policy
from agentbus.services.ingress.channels.base import HttpRequest, Rejected
from agentbus.services.ingress.channels.telegram import TelegramInbound
from agentbus.services.ingress.inbound import Inbound
from agentbus.services.ingress.longconn.base import LinkState
from agentbus.services.ingress.longconn.telegram import TelegramPolling
from tests.fakes.telegram import BOT_ID, BOT_TOKEN, BOT_USERNAME, FakeTelegram, user
from tests.fakes.telegram_rich import callback_query

SECRET = "tg-Secret_token-0123456789"
CARD = Card(title="Deploy v2?", text="The build passed.", buttons=(
    Button(label="Ship it", value="deploy v2", style="primary"),
    Button(label="Cancel", value="cancel", style="danger")))
BOT = user(BOT_ID, "Agentbus", BOT_USERNAME, True)


def channel(**over: Any) -> TelegramChannel:
    raw: dict[str, Any] = {"id": "tg", "type": "telegram", "tenant": "acme", "agent": "assistant",
                           "bot_token": {"env": "TG_TOKEN_UNSET", "default": BOT_TOKEN},
                           "secret_token": {"env": "TG_SECRET_UNSET", "default": SECRET}, "bot_username": BOT_USERNAME}
    raw.update(over)
    return TelegramChannel.model_validate(raw)


def reply(text: str = "Ready to deploy.", chat_id: int = 42, kind: str = "direct", **parts: Any) -> ReplyGeneratedData:
    return ReplyGeneratedData(agent="assistant", channel="tg", channel_type="telegram",
                              chat=Chat(id=str(chat_id), type=kind), text=text, model="echo",
                              reply_route={"chat_id": chat_id, "message_id": 10}, **parts)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    f = await FakeTelegram().start()
    f.remember(42, 10)
    yield f
    await f.stop()


async def receive(upd: dict[str, Any], ch: TelegramChannel | None = None) -> Inbound:
    req = HttpRequest("POST", "/v1/webhooks/tg", {"content-type": "application/json",
                                                  "x-telegram-bot-api-secret-token": SECRET}, {},
                      orjson.dumps(upd), time.time())
    return await TelegramInbound(ch or channel()).receive(req)


# ---------------------------------------------------------------- out


async def test_card_is_an_inline_keyboard_on_the_message(fake: FakeTelegram) -> None:
    async with httpx.AsyncClient() as http:
        out = TelegramOutbound(channel(api_base=fake.url), http, TokenCache())
        pushed = await out.push(reply(card=CARD), uuid.uuid4())
    [sent] = fake.sent
    assert pushed.platform_message_id == str(sent["message_id"])
    assert sent["plain"] == "Ready to deploy.\n\nDeploy v2?\n\nThe build passed."
    markup = telegram.InlineKeyboardMarkup.de_json(sent["reply_markup"], None)
    assert markup is not None
    assert [(b.text, b.callback_data) for row in markup.inline_keyboard for b in row] == [
        ("Ship it", "deploy v2"), ("Cancel", "cancel")]
    assert sent["reply_parameters"]["message_id"] == 10


async def test_a_card_repeating_the_reply_text_is_not_repeated_and_long_values_go_as_text(fake: FakeTelegram) -> None:
    long_value = "approve the change request " + "x" * 60  # over callback_data's 64 bytes
    async with httpx.AsyncClient() as http:
        out = TelegramOutbound(channel(api_base=fake.url), http, TokenCache())
        await out.push(reply("Pick one", card=Card(text="Pick one", buttons=(Button(label="A", value="a"),))),
                       uuid.uuid4())
        await out.push(reply("Approve?", card=Card(buttons=(Button(label="Approve", value=long_value),))),
                       uuid.uuid4())
    first, second = fake.sent
    assert first["plain"] == "Pick one" and first["reply_markup"]["inline_keyboard"] == [
        [{"text": "A", "callback_data": "a"}]]
    assert "reply_markup" not in second
    assert second["plain"] == f"Approve?\n\n1. Approve (answer: {long_value})"


async def test_reply_without_parts_goes_out_as_before(fake: FakeTelegram) -> None:
    async with httpx.AsyncClient() as http:
        await TelegramOutbound(channel(api_base=fake.url), http, TokenCache()).push(reply("plain"), uuid.uuid4())
    [sent] = fake.sent
    assert {k for k in sent if not k.startswith("_")} - {"plain", "entities", "message_id"} == {
        "chat_id", "text", "reply_parameters"}
    assert not fake.media


async def test_attachments_follow_the_text_and_a_retry_resends_nothing(fake: FakeTelegram) -> None:
    parts = (Attachment(kind="image", url="https://cdn.example.com/chart.png", name="chart.png"),
             Attachment(kind="file", url="https://cdn.example.com/report.pdf", name="report.pdf"),
             Attachment(kind="image", ref="sha256:" + "0" * 64))  # no URL: Telegram cannot fetch it
    r, rid = reply("Here you go", attachments=parts), uuid.uuid4()
    fake.media_plan.extend([None, (502, "Bad Gateway", {})])  # the photo goes, the document meets a 502
    async with httpx.AsyncClient() as http:
        out = TelegramOutbound(channel(api_base=fake.url), http, TokenCache())
        with pytest.raises(Retryable):
            await out.push(r, rid)
        await out.push(r, rid)  # the retry: only the document is left
    assert [m["plain"] for m in fake.sent] == ["Here you go"]
    assert [(m["kind"], m.get("photo") or m.get("document"), m["caption"]) for m in fake.media] == [
        ("photo", "https://cdn.example.com/chart.png", "chart.png"),
        ("document", "https://cdn.example.com/report.pdf", "report.pdf")]


async def test_the_official_client_sends_photos_and_answers_queries_on_the_fake(fake: FakeTelegram) -> None:
    bot = telegram.Bot(BOT_TOKEN, base_url=f"{fake.url}/bot")
    async with bot:
        msg = await bot.send_photo(42, "https://cdn.example.com/a.png", caption="a.png",
                                   reply_markup=telegram.InlineKeyboardMarkup(
                                       [[telegram.InlineKeyboardButton("Yes", callback_data="yes")]]))
        assert msg.photo and msg.caption == "a.png"
        with pytest.raises(telegram.error.BadRequest, match="(?i)button_data_invalid"):
            await bot.send_message(42, "x", reply_markup=telegram.InlineKeyboardMarkup(
                [[telegram.InlineKeyboardButton("No", callback_data="n" * 65)]]))
        with pytest.raises(telegram.error.BadRequest, match="(?i)no document"):
            await bot.send_document(42, "")
        assert await bot.answer_callback_query("123") is True
        with pytest.raises(telegram.error.BadRequest, match="(?i)query id is invalid"):
            await bot.answer_callback_query("123")


# ---------------------------------------------------------------- presses in


async def test_a_press_is_a_message_of_the_same_chat_with_the_action(fake: FakeTelegram) -> None:
    async with httpx.AsyncClient() as http:
        await TelegramOutbound(channel(api_base=fake.url), http, TokenCache()).push(
            reply(chat_id=-100123, kind="group", card=CARD), uuid.uuid4())
    [card_msg] = fake.sent
    upd = callback_query(card_msg, "deploy v2", presser=user(43, "Bob", "bob"), bot=BOT)
    parsed = telegram.Update.de_json(upd, None)
    assert parsed is not None and parsed.callback_query is not None and parsed.callback_query.data == "deploy v2"
    inbound = await receive(upd)
    m = inbound.message
    assert m is not None and m.action is not None
    assert m.text == "deploy v2" and m.action.value == "deploy v2" and m.action.label == "Ship it"
    assert m.action.card_message_id == str(card_msg["message_id"])
    assert m.chat.id == "-100123" and m.chat.type == "group" and m.sender.id == "43" and m.sender.name == "bob"
    assert m.reply_route == {"chat_id": -100123, "message_id": card_msg["message_id"]}
    qid = upd["callback_query"]["id"]
    assert inbound.dedupe_id == m.platform_message_id == f"callback:{qid}"
    assert orjson.loads(inbound.answer.body) == {"method": "answerCallbackQuery", "callback_query_id": qid}
    # a press in a group needs no mention: it is on the bot's own card
    assert policy(channel(), m) == (None, None)
    again = await receive(callback_query(card_msg, "deploy v2", presser=user(43, "Bob", "bob"), bot=BOT))
    assert again.message is not None and again.dedupe_id != inbound.dedupe_id  # a second press is a second message


@pytest.mark.parametrize(("query", "reason"), [
    ("nope", "not an object"),
    ({"from": user(), "data": "x"}, "valid id"),
    ({"id": "1", "data": "x", "message": {"message_id": 1, "chat": {"id": 42, "type": "private"}}}, "from.id"),
    ({"id": "1", "from": user(), "data": "é" * 33, "message": {"message_id": 1, "chat": {"id": 42}}}, "1-64 bytes"),
    ({"id": "1", "from": user(), "data": 5, "message": {"message_id": 1, "chat": {"id": 42}}}, "1-64 bytes"),
    ({"id": "1", "from": user(), "data": "x", "message": {"chat": {"id": 42}}}, "message_id"),
])
async def test_malformed_presses_are_refused(query: Any, reason: str) -> None:
    with pytest.raises(Rejected) as err:
        await receive({"update_id": 77, "callback_query": query})
    assert err.value.status == 400 and reason in err.value.reason


async def test_presses_without_a_value_or_chat_are_answered_and_ignored() -> None:
    game = await receive({"update_id": 78, "callback_query": {"id": "9", "from": user(), "chat_instance": "1",
                                                              "game_short_name": "g"}})
    inline = await receive({"update_id": 79, "callback_query": {"id": "10", "from": user(), "chat_instance": "1",
                                                                "inline_message_id": "AA", "data": "x"}})
    for inbound, qid in ((game, "9"), (inline, "10")):
        assert inbound.message is None and orjson.loads(inbound.answer.body)["callback_query_id"] == qid


async def test_polling_asks_for_presses_and_answers_them_after_delivery(fake: FakeTelegram) -> None:
    ch = channel(mode="stream", secret_token=None, api_base=fake.url, poll_timeout_s=1)
    delivered: list[Inbound] = []
    answered_before: list[int] = []

    async def deliver(inbound: Inbound) -> Outcome:
        answered_before.append(len(fake.answered))
        delivered.append(inbound)
        return Outcome("published")

    http = async_client(timeout=30, max_connections=4)
    conn = TelegramPolling(ch, TelegramInbound(ch), deliver, http, LinkState())
    sent = {"chat_id": 42, "message_id": 10, "plain": "Ready?",
            "reply_markup": {"inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]}}
    upd = callback_query(sent, "yes", presser=user(), bot=BOT)
    fake.updates.push(upd)
    task = asyncio.create_task(conn.run())
    try:
        async with asyncio.timeout(10):
            while not fake.answered:
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await http.aclose()
    assert "callback_query" in fake.updates.polls[0]["allowed_updates"]
    assert answered_before == [0] and [a["callback_query_id"] for a in fake.answered] == [upd["callback_query"]["id"]]
    m = delivered[0].message
    assert m is not None and m.action is not None and m.action.label == "Yes" and m.text == "yes"


async def test_a_streamed_reply_gets_its_keyboard_and_files_when_it_is_final(fake: FakeTelegram) -> None:
    async with httpx.AsyncClient() as http:
        out = TelegramOutbound(channel(api_base=fake.url), http, TokenCache())
        await out.push(reply("Ready"), uuid.uuid4())  # the streamed message, as post_partial left it
        [partial] = fake.sent
        r = reply(card=CARD, attachments=(Attachment(kind="file", url="https://cdn.example.com/r.pdf", name="r"),))
        pushed = await out.edit_final(r, str(partial["message_id"]))
    [edit] = fake.edits
    assert pushed.platform_message_id == str(partial["message_id"])
    assert edit["plain"] == "Ready to deploy.\n\nDeploy v2?\n\nThe build passed."
    keys = [b["callback_data"] for row in edit["reply_markup"]["inline_keyboard"] for b in row]
    assert keys == ["deploy v2", "cancel"]
    assert [(m["kind"], m["document"]) for m in fake.media] == [("document", "https://cdn.example.com/r.pdf")]
