"""Telegram getUpdates long polling against a local Bot API over real HTTP.

python-telegram-bot's own ``Bot.get_updates`` and ``delete_webhook`` run against the same fake first, so the
fake's queue semantics are the Bot API's as the official client library relies on them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import telegram

from agentbus.channeltypes.telegram import TelegramChannel
from agentbus.httpclient import async_client
from agentbus.services.ingress.accept import Outcome
from agentbus.services.ingress.channels.telegram import TelegramInbound
from agentbus.services.ingress.inbound import Inbound
from agentbus.services.ingress.longconn import connection_class
from agentbus.services.ingress.longconn.base import LinkState
from agentbus.services.ingress.longconn.telegram import TelegramApiError, TelegramPolling
from tests.fakes.telegram import BOT_TOKEN, BOT_USERNAME, FakeTelegram, update


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    f = await FakeTelegram().start()
    yield f
    await f.stop()


def channel(tg: FakeTelegram, **over: Any) -> TelegramChannel:
    raw: dict[str, Any] = {"id": "tg", "type": "telegram", "tenant": "acme", "agent": "assistant", "mode": "stream",
                           "api_base": tg.url, "bot_token": {"env": "UNSET_TG", "default": BOT_TOKEN},
                           "bot_username": BOT_USERNAME, "poll_timeout_s": 1}
    raw.update(over)
    return TelegramChannel.model_validate(raw)


class Recorder:
    def __init__(self, fail_on: set[int] | None = None) -> None:
        self.delivered: list[Inbound] = []
        self.fail_on = fail_on or set()

    async def __call__(self, inbound: Inbound) -> Outcome:
        if inbound.dedupe_id is not None and int(inbound.dedupe_id) in self.fail_on:
            self.fail_on.discard(int(inbound.dedupe_id))
            raise ConnectionError("broker unavailable")
        self.delivered.append(inbound)
        return Outcome("published")


async def until(cond: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


async def test_the_official_client_sees_the_fakes_queue_as_telegram_documents_it(tg: FakeTelegram) -> None:
    tg.updates.webhook_url = "https://example.test/hook"
    bot = telegram.Bot(BOT_TOKEN, base_url=f"{tg.url}/bot")
    with pytest.raises(telegram.error.Conflict):
        await bot.get_updates(timeout=0)
    assert await bot.delete_webhook() is True
    first, second = update("one"), update("two")
    tg.updates.push(first, second)
    got = await bot.get_updates(timeout=1)
    assert [u.update_id for u in got] == [first["update_id"], second["update_id"]]
    assert got[0].message is not None and got[0].message.text == "one"
    again = await bot.get_updates(offset=first["update_id"] + 1, timeout=0)  # confirms the first
    assert [u.update_id for u in again] == [second["update_id"]]
    assert tg.updates.unconfirmed() == [second["update_id"]]
    assert await bot.get_updates(offset=second["update_id"] + 1, timeout=0) == ()


async def test_updates_are_confirmed_only_after_delivery(tg: FakeTelegram) -> None:
    tg.updates.webhook_url = "https://example.test/hook"  # polling mode removes the webhook first
    ch = channel(tg)
    http = async_client(timeout=30, max_connections=8)
    deliver = Recorder(fail_on=set())
    state = LinkState()
    cls = connection_class("telegram")
    assert cls is TelegramPolling
    conn = cls(ch, TelegramInbound(ch), deliver, http, state)
    u1, u2 = update("first question"), update("second question")
    deliver.fail_on.add(u2["update_id"])
    tg.updates.push(u1, u2)
    with pytest.raises(ConnectionError):
        await conn.run()  # u2 could not be published: the session ends without confirming it
    assert tg.updates.webhook_url == "" and state.connected
    assert [i.dedupe_id for i in deliver.delivered] == [str(u1["update_id"])]
    assert tg.updates.unconfirmed() == [u1["update_id"], u2["update_id"]]  # confirmed by the next poll only
    task = asyncio.create_task(conn.run())
    await until(lambda: len(deliver.delivered) == 2)
    await until(lambda: tg.updates.unconfirmed() == [])
    assert tg.updates.polls[-1]["offset"] == u2["update_id"] + 1
    m = deliver.delivered[1].message
    assert m is not None and m.text == "second question" and m.reply_route["chat_id"] == 42
    # a replica starting afresh (no offset) after a take-over gets only what was never confirmed
    u3 = update("third")
    tg.updates.push(u3)
    await until(lambda: len(deliver.delivered) == 3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await http.aclose()


async def test_edits_are_ignored_and_malformed_updates_do_not_block_the_queue(tg: FakeTelegram) -> None:
    ch = channel(tg)
    http = async_client(timeout=30, max_connections=8)
    deliver = Recorder()
    conn = TelegramPolling(ch, TelegramInbound(ch), deliver, http, LinkState())
    broken = {"update_id": 5, "message": "not an object"}
    edited = update("typo fixed", edited=True)
    fine = update("real question")
    tg.updates.push(broken, edited, fine)
    task = asyncio.create_task(conn.run())
    await until(lambda: tg.updates.unconfirmed() == [] and len(tg.updates.polls) >= 2)
    texts = [i.message.text if i.message else i.note for i in deliver.delivered]
    assert len(deliver.delivered) == 2 and "edit" in texts[0] and texts[1] == "real question"
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await http.aclose()


async def test_a_refused_token_or_a_second_poller_ends_the_session(tg: FakeTelegram) -> None:
    http = async_client(timeout=30, max_connections=8)
    wrong = channel(tg, bot_token={"env": "UNSET_TG", "default": "1:wrong"})
    state = LinkState()
    with pytest.raises(TelegramApiError) as err:
        await TelegramPolling(wrong, TelegramInbound(wrong), Recorder(), http, state).run()
    assert err.value.status == 401 and not state.connected
    ch = channel(tg, poll_timeout_s=5)
    a = TelegramPolling(ch, TelegramInbound(ch), Recorder(), http, LinkState())
    b = TelegramPolling(ch, TelegramInbound(ch), Recorder(), http, LinkState())
    first = asyncio.create_task(a.run())
    await until(lambda: len(tg.updates.polls) >= 1)  # a is now waiting in its long poll
    second = asyncio.create_task(b.run())
    with pytest.raises(TelegramApiError) as conflict:
        await first
    assert conflict.value.status == 409 and tg.updates.conflicts == 1
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    await http.aclose()
