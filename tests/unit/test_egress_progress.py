"""Egress shows reply.progress: Telegram's typing indicator, a streamed answer sent once and edited (Telegram
editMessageText, Slack chat.update), the final reply edited into it; stale, late and failing progress dropped.
The adapters speak to the platform fakes over real HTTP; the official SDKs check the fakes' new methods."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import slack_sdk.web.async_client
import telegram

from agentbus.channeltypes.slack import SlackChannel
from agentbus.channeltypes.telegram import TelegramChannel
from agentbus.events import (
    Chat,
    DeliveryCompleted,
    Replay,
    ReplyGenerated,
    ReplyGeneratedData,
    ReplyProgress,
    ReplyProgressData,
)
from agentbus.services.egress.channels.base import OutboundAdapter, TokenCache
from agentbus.services.egress.channels.slack import SlackOutbound
from agentbus.services.egress.channels.telegram import TelegramOutbound
from agentbus.services.egress.handlers import Egress
from agentbus.services.egress.progress import ProgressDisplay
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import BOT_TOKEN, FakeTelegram
from tests.unit.fakes_egress import FakeDeliveryLedger, FakeProgressStore, FakeRateLimiter

SLACK_TOKEN = "xoxb-progress-test"


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    f = await FakeTelegram().start()
    f.remember(42, 10)
    yield f
    await f.stop()


@pytest.fixture
async def sl() -> AsyncIterator[FakeSlack]:
    f = await FakeSlack(tokens={SLACK_TOKEN}).start()
    yield f
    await f.stop()


def tg_adapter(fake: FakeTelegram, http: httpx.AsyncClient, progress: str) -> TelegramOutbound:
    ch = TelegramChannel.model_validate({"id": "tg", "type": "telegram", "tenant": "acme", "agent": "assistant",
                                         "mode": "stream", "bot_token": {"env": "TG_UNSET", "default": BOT_TOKEN},
                                         "api_base": fake.url, "progress": progress})
    return TelegramOutbound(ch, http, TokenCache())


def sl_adapter(fake: FakeSlack, http: httpx.AsyncClient, progress: str) -> SlackOutbound:
    ch = SlackChannel.model_validate({"id": "tg", "type": "slack", "tenant": "acme", "agent": "assistant",
                                      "signing_secret": {"env": "SL_UNSET", "default": "s"},
                                      "bot_token": {"env": "SL_TOKEN_UNSET", "default": SLACK_TOKEN},
                                      "api_base": fake.url, "progress": progress})
    return SlackOutbound(ch, http, TokenCache())


ROUTE_TG: dict[str, Any] = {"chat_id": 42, "message_id": 10}
ROUTE_SL: dict[str, Any] = {"channel": "D0DIRECT01", "ts": "1712000000.000100"}  # as ingress routes a DM


def progress(stage: str, seq: int, text: str = "", route: dict[str, Any] | None = None) -> ReplyProgress:
    return ReplyProgress.new(ReplyProgressData(
        agent="assistant", channel="tg", channel_type="telegram", chat=Chat(id="42"),
        reply_route=ROUTE_TG if route is None else route, in_reply_to="10", stage=stage, seq=seq, text=text,
    ), source="reasoner", tenant="acme", conversation="acme/tg/42")


def final(text: str, streamed: bool, route: dict[str, Any] | None = None) -> ReplyGenerated:
    return ReplyGenerated.new(ReplyGeneratedData(
        agent="assistant", channel="tg", channel_type="telegram", chat=Chat(id="42"), text=text, model="m",
        reply_route=ROUTE_TG if route is None else route, in_reply_to="10", streamed=streamed,
    ), source="reasoner", tenant="acme", conversation="acme/tg/42")


def wiring(adapter: OutboundAdapter) -> tuple[ProgressDisplay, Egress, FakeProgressStore]:
    store = FakeProgressStore()
    display = ProgressDisplay({"tg": adapter}, store)
    return display, Egress({"tg": adapter}, FakeDeliveryLedger(), FakeRateLimiter(), progress=display), store


async def test_telegram_typing_then_a_streamed_answer_edited_and_finished_in_one_message(tg: FakeTelegram) -> None:
    async with httpx.AsyncClient() as http:
        display, egress, _ = wiring(tg_adapter(tg, http, "stream"))
        assert await display.show(progress("working", 0)) == []
        assert [(a["chat_id"], a["action"]) for a in tg.actions] == [(42, "typing")]
        await display.show(progress("partial", 1, "Once upon"))
        await display.show(progress("partial", 2, "Once upon a time"))
        [sent] = tg.sent
        assert sent["reply_parameters"]["message_id"] == 10 and tg.text_of(sent["message_id"]) == "Once upon a time"
        await display.show(progress("partial", 1, "Once"))  # older than one applied: dropped
        assert tg.text_of(sent["message_id"]) == "Once upon a time" and len(tg.edits) == 1
        [done] = await egress.push_reply(final("Once upon a time, *there* was a broker.", streamed=True))
        assert isinstance(done, DeliveryCompleted) and done.data.status == "delivered"
        assert done.data.platform_message_id == str(sent["message_id"])
        assert len(tg.sent) == 1 and tg.text_of(sent["message_id"]) == "Once upon a time, *there* was a broker."
        await display.show(progress("working", 3))  # after the reply went out: dropped
        await display.show(progress("partial", 4, "late"))
        assert len(tg.actions) == 1 and len(tg.sent) == 1 and len(tg.edits) == 2


async def test_a_streamed_reply_with_no_message_recorded_is_sent_as_usual(tg: FakeTelegram) -> None:
    async with httpx.AsyncClient() as http:
        display, egress, _ = wiring(tg_adapter(tg, http, "stream"))
        [done] = await egress.push_reply(final("the whole answer", streamed=True))
        assert done.data.status == "delivered" and [m["plain"] for m in tg.sent] == ["the whole answer"]
        assert tg.edits == []


async def test_a_final_reply_arriving_while_the_first_partial_is_sent_edits_it(tg: FakeTelegram) -> None:
    """The race of two consumers: the reply must not send a second message beside the partial in flight."""
    async with httpx.AsyncClient() as http:
        adapter = tg_adapter(tg, http, "stream")
        display, egress, store = wiring(adapter)
        gate, entered = asyncio.Event(), asyncio.Event()
        post = adapter.post_partial

        async def slow_post(d: ReplyProgressData) -> str:
            entered.set()
            await gate.wait()
            return await post(d)

        adapter.post_partial = slow_post  # type: ignore[method-assign]
        partial = asyncio.create_task(display.show(progress("partial", 1, "Once upon")))
        await entered.wait()
        reply = asyncio.create_task(egress.push_reply(final("Once upon a time.", streamed=True)))
        await asyncio.sleep(0.3)  # the reply is waiting for the partial's message id, not sending
        assert tg.sent == [] and not reply.done()
        gate.set()
        await partial
        [done] = await reply
        [sent] = tg.sent
        assert done.data.platform_message_id == str(sent["message_id"])
        assert tg.text_of(sent["message_id"]) == "Once upon a time."
        assert store.rows[("tg", "10")]["finished"]


async def test_typing_mode_shows_no_partials_and_off_shows_nothing(tg: FakeTelegram) -> None:
    async with httpx.AsyncClient() as http:
        display, egress, _ = wiring(tg_adapter(tg, http, "typing"))
        await display.show(progress("working", 0))
        await display.show(progress("partial", 1, "so far"))
        assert len(tg.actions) == 1 and tg.sent == []
        await egress.push_reply(final("answer", streamed=False))
        assert [m["plain"] for m in tg.sent] == ["answer"]
        off, _, _ = wiring(tg_adapter(tg, http, "off"))
        await off.show(progress("working", 0))
        await off.show(progress("working", 1).model_copy(update={"replay": Replay(run="r")}))
        assert len(tg.actions) == 1


async def test_a_failing_platform_never_fails_the_progress_handler(tg: FakeTelegram) -> None:
    async with httpx.AsyncClient() as http:
        display, _, store = wiring(tg_adapter(tg, http, "stream"))
        tg.chats.pop(42)  # "chat not found" from now on
        assert await display.show(progress("working", 0)) == []
        assert await display.show(progress("partial", 1, "text")) == []
        assert tg.actions == [] and tg.sent == [] and store.rows[("tg", "10")]["message_id"] is None


async def test_slack_shows_the_thread_status_and_streams_with_chat_update(sl: FakeSlack) -> None:
    async with httpx.AsyncClient() as http:
        display, egress, _ = wiring(sl_adapter(sl, http, "stream"))
        await display.show(progress("working", 0, route=ROUTE_SL))
        assert sl.posted == []
        [status] = sl.statuses  # the assistant thread status in the question's thread
        thread = ROUTE_SL.get("thread_ts") or ROUTE_SL["ts"]
        assert (status["channel_id"], status["thread_ts"], status["status"]) == (
            ROUTE_SL["channel"], thread, "is thinking…")
        await display.show(progress("partial", 1, "a < b", route=ROUTE_SL))
        await display.show(progress("partial", 2, "a < b and b < c", route=ROUTE_SL))
        [posted] = sl.posted
        assert sl.text_of(posted["ts"]) == "a &lt; b and b &lt; c"
        [done] = await egress.push_reply(final("a < b < c", streamed=True, route=ROUTE_SL))
        assert done.data.platform_message_id == posted["ts"] and len(sl.posted) == 1
        assert sl.text_of(posted["ts"]) == "a &lt; b &lt; c"


async def test_the_official_sdks_speak_to_the_fakes_new_methods(tg: FakeTelegram, sl: FakeSlack) -> None:
    bot = telegram.Bot(BOT_TOKEN, base_url=f"{tg.url}/bot")
    async with bot:
        assert await bot.send_chat_action(42, telegram.constants.ChatAction.TYPING) is True
        msg = await bot.send_message(42, "draft")
        edited = await bot.edit_message_text("final", chat_id=42, message_id=msg.message_id)
        assert isinstance(edited, telegram.Message) and edited.text == "final"
        with pytest.raises(telegram.error.BadRequest, match="not modified"):
            await bot.edit_message_text("final", chat_id=42, message_id=msg.message_id)
    client = slack_sdk.web.async_client.AsyncWebClient(token=SLACK_TOKEN, base_url=sl.url + "/")
    posted = await client.chat_postMessage(channel="D0DIRECT01", text="draft")
    set_status = await client.assistant_threads_setStatus(channel_id="D0DIRECT01", thread_ts=str(posted["ts"]),
                                                          status="is thinking…")
    assert set_status["ok"] and sl.statuses[-1]["status"] == "is thinking…"
    with pytest.raises(slack_sdk.errors.SlackApiError, match="invalid_thread_ts"):
        await client.assistant_threads_setStatus(channel_id="D0DIRECT01", thread_ts="soon", status="x")
    updated = await client.chat_update(channel="D0DIRECT01", ts=posted["ts"], text="final")
    assert updated["ok"] and sl.text_of(str(posted["ts"])) == "final"
    with pytest.raises(slack_sdk.errors.SlackApiError, match="message_not_found"):
        await client.chat_update(channel="D0DIRECT01", ts="1.2", text="x")
