"""Edited Slack messages (subtype ``message_changed``): no second answer unless the channel asks for one,
the same in webhook mode (signed requests) and in Socket Mode (the fake gateway)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentbus.channeltypes.slack import SlackChannel
from agentbus.services.ingress.accept import Outcome
from agentbus.services.ingress.channels.base import HttpRequest, Rejected
from agentbus.services.ingress.channels.slack import SlackInbound
from agentbus.services.ingress.inbound import Inbound
from agentbus.services.ingress.longconn.base import LinkState
from agentbus.services.ingress.longconn.slack import SlackSocketMode
from tests.fakes.slack import BOT_USER, event_callback, message, new_ts, signed
from tests.fakes.slack_socket import FakeSlackSocket

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
APP_TOKEN = "xapp-1-A0APP00001-1234567890123-abcdef"
BOT_TOKEN = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"


def channel(**over: Any) -> SlackChannel:
    raw: dict[str, Any] = {
        "id": "sl", "type": "slack", "tenant": "acme", "agent": "assistant",
        "signing_secret": {"env": "SL_SECRET_UNSET", "default": SECRET},
        "bot_token": {"env": "SL_TOKEN_UNSET", "default": BOT_TOKEN},
    }
    raw.update(over)
    return SlackChannel.model_validate(raw)


def message_changed(original: dict[str, Any], new_text: str, *, edited_ts: str | None = None,
                    edited: bool = True, **inner: Any) -> dict[str, Any]:
    """The event Slack sends when ``original`` is edited (or, with ``edited=False``, unfurled)."""
    stamp = edited_ts or new_ts()
    changed = {"type": "message", "user": original["user"], "text": new_text, "ts": original["ts"],
               "client_msg_id": original["client_msg_id"], **inner}
    if edited:
        changed["edited"] = {"user": original["user"], "ts": stamp}
    if "thread_ts" in original:
        changed["thread_ts"] = original["thread_ts"]
    return {"type": "message", "subtype": "message_changed", "hidden": True, "channel": original["channel"],
            "ts": stamp, "event_ts": stamp, "channel_type": original["channel_type"], "message": changed,
            "previous_message": {k: original[k] for k in ("type", "user", "text", "ts", "client_msg_id")}}


async def receive(ch: SlackChannel, payload: dict[str, Any]) -> Inbound:
    body, headers = signed(SECRET, payload)
    return await SlackInbound(ch).receive(HttpRequest("POST", "/v1/webhooks/sl", headers, {}, body, time.time()))


async def test_edits_are_ignored_by_default() -> None:
    original = message("what is 2+2?")
    first = await receive(channel(), event_callback(original))
    assert first.message is not None
    payload = event_callback(message_changed(original, "what is 3+3?"))
    edit = await receive(channel(), payload)
    assert edit.message is None and "message_changed" in edit.note and "edits: ignore" in edit.note
    assert edit.dedupe_id == payload["event_id"]  # acknowledged (2xx), nothing published


async def test_edits_answered_as_new_questions() -> None:
    ch = channel(edits="answer")
    parent = new_ts()
    original = message(f"<@{BOT_USER}> what is 2+2?", channel="C0GENERAL1", channel_type="channel",
                       thread_ts=parent)
    first = await receive(ch, event_callback(original))
    stamp = new_ts()
    payload = event_callback(message_changed(original, f"<@{BOT_USER}> what is 3+3?", edited_ts=stamp))
    edit = await receive(ch, payload)
    m, o = edit.message, first.message
    assert m is not None and o is not None
    assert m.text == "what is 3+3?" and m.mentioned_bot and m.chat == o.chat and m.sender == o.sender
    assert m.platform_message_id == f"C0GENERAL1:{original['ts']}:edited:{stamp}" == edit.dedupe_id
    assert m.platform_message_id != o.platform_message_id
    assert m.reply_route == {**o.reply_route, "thread_ts": parent}  # answered where the question was
    # Slack's retry of the edit has the same key; a second edit is a new question
    again = await receive(ch, payload)
    assert again.dedupe_id == edit.dedupe_id
    second = await receive(ch, event_callback(message_changed(original, f"<@{BOT_USER}> what is 4+4?")))
    assert second.dedupe_id not in (edit.dedupe_id, first.dedupe_id)


async def test_what_is_not_an_edit_is_not_answered_even_with_edits_answer() -> None:
    ch = channel(edits="answer")
    original = message("see https://example.com")
    unfurl = await receive(ch, event_callback(message_changed(original, original["text"], edited=False,
                                                              attachments=[{"id": 1}])))
    assert unfurl.message is None and "unfurl" in unfurl.note
    same = await receive(ch, event_callback(message_changed(original, original["text"])))
    assert same.message is None and "unchanged" in same.note
    own = message("the bot's answer", user=BOT_USER)
    bot_edit = await receive(ch, event_callback(message_changed(own, "the bot's corrected answer",
                                                                bot_id="B0BOT00001")))
    assert bot_edit.message is not None and bot_edit.message.from_self  # dropped by the acceptor's policy
    tomb = await receive(ch, event_callback(message_changed(original, "This message was deleted.",
                                                            subtype="tombstone")))
    assert tomb.message is None and "tombstone" in tomb.note
    broken = event_callback(message_changed(original, "x"))
    broken["event"]["message"] = "not an object"
    with pytest.raises(Rejected, match="message_changed without a message") as rej:
        await receive(ch, broken)
    assert rej.value.status == 400


@settings(max_examples=200, deadline=None)
@given(inner=st.dictionaries(
    st.sampled_from(["type", "user", "text", "ts", "thread_ts", "subtype", "bot_id", "edited"]),
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=20),
              st.sampled_from(["1700000000.000100", BOT_USER, "tombstone"]),
              st.fixed_dictionaries({"ts": st.one_of(st.text(max_size=12), st.just("1700000001.000200"))})),
    max_size=8),
    previous=st.one_of(st.none(), st.text(max_size=5), st.fixed_dictionaries({"text": st.text(max_size=5)})))
def test_any_edit_is_an_inbound_or_a_4xx(inner: dict[str, Any], previous: Any) -> None:
    event = {"type": "message", "subtype": "message_changed", "channel": "C0GENERAL1", "ts": new_ts(),
             "message": inner, "previous_message": previous}
    try:
        result = asyncio.run(receive(channel(edits="answer"), event_callback(event)))
    except Rejected as rej:
        assert 400 <= rej.status < 500
    else:
        assert isinstance(result, Inbound)


@pytest.mark.parametrize("edits", ["ignore", "answer"])
async def test_edits_over_socket_mode(edits: str) -> None:
    fake = await FakeSlackSocket({APP_TOKEN}).start()
    got: list[Inbound] = []

    async def deliver(inbound: Inbound) -> Outcome:
        got.append(inbound)
        return Outcome("published" if inbound.message else "ignored", uuid.uuid4())

    ch = channel(mode="stream", signing_secret=None, api_base=fake.url, edits=edits,
                 app_token={"env": "SL_APP_UNSET", "default": APP_TOKEN})
    try:
        async with httpx.AsyncClient() as http:
            task = asyncio.create_task(SlackSocketMode(ch, SlackInbound(ch), deliver, http, LinkState()).run())
            await fake.wait_link()
            original = message("what is 2+2?")
            await fake.push(event_callback(original))
            eid = await fake.push(event_callback(message_changed(original, "what is 3+3?")))
            await fake.wait(lambda: fake.acked(eid))  # acknowledged either way
            task.cancel()
            await asyncio.wait({task})
    finally:
        await fake.stop()
    first, edit = got
    assert first.message is not None and first.message.text == "what is 2+2?"
    if edits == "ignore":
        assert edit.message is None and "edits: ignore" in edit.note
    else:
        assert edit.message is not None and edit.message.text == "what is 3+3?"
        assert edit.dedupe_id is not None and ":edited:" in edit.dedupe_id
