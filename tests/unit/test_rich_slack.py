"""Slack cards, images and button presses: Block Kit checked with slack_sdk's models, presses over real HTTP
(signed interactivity requests) and a real WebSocket (Socket Mode ``interactive`` envelopes)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, HeaderBlock, ImageBlock, SectionBlock
from slack_sdk.web.async_client import AsyncWebClient

from agentbus.channeltypes.slack import SlackChannel
from agentbus.events import Attachment, Button, Card, Chat, ReplyGeneratedData, Sender
from agentbus.services.egress.channels.base import TokenCache
from agentbus.services.egress.channels.slack import SlackOutbound
from agentbus.services.ingress.accept import Outcome, policy
from agentbus.services.ingress.channels.base import HttpRequest, Rejected
from agentbus.services.ingress.channels.slack import SlackInbound
from agentbus.services.ingress.inbound import Inbound
from agentbus.services.ingress.longconn.base import LinkState
from agentbus.services.ingress.longconn.slack import SlackSocketMode
from tests.fakes.slack import FakeSlack, new_ts
from tests.fakes.slack_interactive import block_actions, blocks_problems, signed_form
from tests.fakes.slack_socket import FakeSlackSocket

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"
APP_TOKEN = "xapp-1-A0APP00001-1234567890123-0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
CARD = Card(title="Deploy v2?", text="The *build* passed.", buttons=(
    Button(label="Ship it", value="deploy v2", style="primary"), Button(label="Cancel", value="cancel", style="danger"),
    Button(label="Later", value="x" * 200)))


def channel(**over: Any) -> SlackChannel:
    raw: dict[str, Any] = {"id": "sl", "type": "slack", "tenant": "acme", "agent": "assistant",
                           "signing_secret": {"env": "SL_SECRET_UNSET", "default": SECRET},
                           "bot_token": {"env": "SL_TOKEN_UNSET", "default": BOT_TOKEN}}
    raw.update(over)
    return SlackChannel.model_validate(raw)


def reply(text: str = "Ready <to> deploy & ship", fmt: str = "text", chat: str = "C0GENERAL1",
          **parts: Any) -> ReplyGeneratedData:
    return ReplyGeneratedData(agent="assistant", channel="sl", channel_type="slack", chat=Chat(id=chat, type="group"),
                              text=text, format=fmt, model="echo", asker=Sender(id="U0ALICE001"),
                              reply_route={"channel": chat, "ts": "1700000000.000100"}, **parts)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    f = await FakeSlack({BOT_TOKEN}).start()
    yield f
    await f.stop()


async def receive(body: bytes, headers: dict[str, str], ch: SlackChannel | None = None) -> Inbound:
    return await SlackInbound(ch or channel()).receive(HttpRequest("POST", "/v1/webhooks/sl", headers, {}, body,
                                                                   time.time()))


# ---------------------------------------------------------------- out


def test_card_blocks_are_valid_block_kit() -> None:
    body = SlackOutbound(channel(), httpx.AsyncClient(), TokenCache()).body(
        reply(card=CARD, attachments=(Attachment(kind="image", url="https://cdn.example.com/c.png", name="chart"),
                                      Attachment(kind="file", url="https://cdn.example.com/r.pdf", name="r.pdf"))))
    assert not blocks_problems(body["blocks"])
    parsed = [Block.parse(b) for b in body["blocks"]]
    for block in parsed:
        assert block is not None
        block.validate_json()
    header, section, card_body, image, actions = parsed
    assert isinstance(header, HeaderBlock) and header.text.text == "Deploy v2?"
    assert isinstance(section, SectionBlock) and section.text is not None
    assert section.text.text == "<@U0ALICE001> Ready &lt;to&gt; deploy &amp; ship\n\nr.pdf: https://cdn.example.com/r.pdf"
    assert isinstance(card_body, SectionBlock) and card_body.text is not None
    assert card_body.text.text == "The *build* passed."
    assert isinstance(image, ImageBlock) and image.image_url == "https://cdn.example.com/c.png"
    assert image.alt_text == "chart"
    assert isinstance(actions, ActionsBlock)
    buttons = [e for e in actions.elements if isinstance(e, ButtonElement)]
    for b in buttons:
        b.validate_json()
    assert [(b.text.text, b.value, b.style) for b in buttons] == [
        ("Ship it", "deploy v2", "primary"), ("Cancel", "cancel", "danger"), ("Later", "x" * 200, None)]
    assert len({b.action_id for b in buttons}) == 3
    assert body["text"] == section.text.text  # the notification's words


def test_the_fakes_checks_are_the_sdks() -> None:
    ok = [{"type": "actions", "elements": [{"type": "button", "action_id": "a", "value": "v",
                                            "text": {"type": "plain_text", "text": "L"}}]}]
    assert blocks_problems(ok) == []
    twice = [{"type": "actions", "elements": [ok[0]["elements"][0], ok[0]["elements"][0]]}]
    assert "duplicate action_id" in blocks_problems(twice)[0]
    long_value = [{"type": "actions", "elements": [{**ok[0]["elements"][0], "value": "v" * 2001}]}]
    assert "2000" in blocks_problems(long_value)[0]
    assert blocks_problems([{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}])
    assert blocks_problems([{"type": "nope"}]) and blocks_problems({"type": "section"})


async def test_posted_with_blocks_and_without_parts_as_before(fake: FakeSlack) -> None:
    async with httpx.AsyncClient() as http:
        out = SlackOutbound(channel(api_base=fake.url, markdown_as="markdown_text"), http, TokenCache())
        plain = out.body(reply("**hi**", "markdown"))
        assert plain == {"channel": "C0GENERAL1", "markdown_text": "<@U0ALICE001> **hi**"}
        await out.push(reply("**hi**", "markdown", card=CARD), uuid.uuid4())  # markdown_text cannot go with blocks
        await out.push(reply("", card=Card(title="Choose", buttons=(Button(label="A", value="a"),))), uuid.uuid4())
        files = out.body(reply("see", attachments=(Attachment(kind="file", url="https://e.com/a.pdf", name="a"),)))
    assert "blocks" not in files and files["text"].endswith("see\n\na: https://e.com/a.pdf")
    first, second = fake.posted
    assert "markdown_text" not in first and first["text"] == "<@U0ALICE001> *hi*" and first["mrkdwn"] is True
    assert first["blocks"][-1]["type"] == "actions"
    assert second["text"] == "<@U0ALICE001> " and [b["type"] for b in second["blocks"]] == ["header", "section",
                                                                                            "actions"]


async def test_slack_sdk_client_posts_the_same_blocks_to_the_fake(fake: FakeSlack) -> None:
    blocks = SlackOutbound(channel(), httpx.AsyncClient(), TokenCache()).body(reply(card=CARD))["blocks"]
    client = AsyncWebClient(token=BOT_TOKEN, base_url=fake.url + "/")
    resp = await client.chat_postMessage(channel="C0GENERAL1", text="fallback", blocks=blocks)
    assert resp["ok"] is True and fake.posted[-1]["blocks"] == blocks
    bad = [{**blocks[-1], "elements": blocks[-1]["elements"] * 2}]
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C0GENERAL1", text="x", blocks=bad)
    assert err.value.response["error"] == "invalid_blocks"


# ---------------------------------------------------------------- presses in


async def posted_card(fake: FakeSlack, thread_ts: str | None = None) -> dict[str, Any]:
    route = {"channel": "C0GENERAL1", "ts": "1700000000.000100", **({"thread_ts": thread_ts} if thread_ts else {})}
    async with httpx.AsyncClient() as http:
        await SlackOutbound(channel(api_base=fake.url), http, TokenCache()).push(
            reply(card=CARD).model_copy(update={"reply_route": route}), uuid.uuid4())
    return fake.posted[-1]


async def test_a_signed_press_is_a_message_of_the_cards_thread(fake: FakeSlack) -> None:
    thread = new_ts()
    card = await posted_card(fake, thread)
    payload = block_actions(card, "deploy v2", user="U0BOB00001")
    inbound = await receive(*signed_form(SECRET, payload))
    m = inbound.message
    assert inbound.answer.status == 200 and inbound.answer.body == b""
    assert m is not None and m.action is not None and m.text == "deploy v2"
    assert m.action.label == "Ship it" and m.action.card_message_id == card["ts"]
    assert m.chat.id == "C0GENERAL1" and m.chat.type == "group" and m.sender.id == "U0BOB00001"
    assert m.reply_route == {"channel": "C0GENERAL1", "ts": card["ts"], "team": "T0TEAM0001", "thread_ts": thread}
    action_ts = payload["actions"][0]["action_ts"]
    assert inbound.dedupe_id == m.platform_message_id == f"C0GENERAL1:{card['ts']}:press:{action_ts}:U0BOB00001"
    assert policy(channel(), m) == (None, None)  # no mention needed on the bot's own card
    again = await receive(*signed_form(SECRET, payload))  # Slack's retry: the same key
    assert again.dedupe_id == inbound.dedupe_id
    other = await receive(*signed_form(SECRET, block_actions(card, "cancel")))
    assert other.message is not None and other.dedupe_id != inbound.dedupe_id and other.message.text == "cancel"
    top = block_actions(await posted_card(fake), "cancel")  # a card outside a thread: answered under it if asked
    threaded = (await receive(*signed_form(SECRET, top), channel(reply_in_thread=True))).message
    assert threaded is not None and threaded.reply_route["thread_ts"] == top["container"]["message_ts"]


async def test_tampered_malformed_and_other_interactions(fake: FakeSlack) -> None:
    card = await posted_card(fake)
    payload = block_actions(card, "cancel")
    body, headers = signed_form(SECRET, payload)
    with pytest.raises(Rejected) as err:
        await receive(body.replace(b"cancel", b"deploy"), headers)  # the signature covers the raw body
    assert err.value.status == 401
    stale_body, stale = signed_form(SECRET, payload, timestamp=int(time.time()) - 3600)
    with pytest.raises(Rejected):
        await receive(stale_body, stale)
    action = payload["actions"][0]
    for broken, reason in [
        (b"payload=%7Bnot-json", "not JSON"),
        (urlencode({"payload": "[1]"}).encode(), "not a JSON object"),
        (urlencode([("payload", "{}"), ("payload", "{}")]).encode(), "more than one"),
        ({**payload, "user": {"id": "bad id"}}, "user.id"),
        ({**payload, "container": {"type": "message", "message_ts": "x"}, "channel": None}, "message_ts"),
        ({**payload, "actions": []}, "exactly one action"),
        ({**payload, "actions": [{**action, "value": "v" * 2001}]}, "value"),
        ({**payload, "actions": [{k: v for k, v in action.items() if k != "value"}]}, "value"),
        ({**payload, "actions": [{**action, "action_ts": None}]}, "action_ts"),
    ]:
        with pytest.raises(Rejected) as err:
            await receive(*signed_form(SECRET, broken))
        assert err.value.status == 400 and reason in err.value.reason
    for ignored in [{**payload, "type": "view_submission"}, {**payload, "container": {"type": "view"}},
                    {**payload, "actions": [{**action, "type": "static_select"}]}]:
        inbound = await receive(*signed_form(SECRET, ignored))
        assert inbound.message is None and inbound.answer.status == 200 and "ignored" in inbound.note
    slash = await receive(*signed_form(SECRET, urlencode({"command": "/ask", "text": "hi"}).encode()))
    assert slash.message is None and "slash command" in slash.note


async def test_socket_mode_interactive_envelope_is_acked_after_delivery(fake: FakeSlack) -> None:
    card = await posted_card(fake)
    gw = await FakeSlackSocket({APP_TOKEN}).start()
    got: list[Inbound] = []
    acked_before: list[bool] = []
    fail = [True]

    async def deliver(inbound: Inbound) -> Outcome:
        acked_before.append(any(True for _ in gw.acks))
        if fail.pop(0) if fail else False:
            raise ConnectionError("broker unavailable")
        got.append(inbound)
        return Outcome("published", uuid.uuid4())

    ch = SlackChannel.model_validate({"id": "sl", "type": "slack", "tenant": "acme", "agent": "assistant",
                                      "mode": "stream", "api_base": gw.url,
                                      "app_token": {"env": "SL_APP_UNSET", "default": APP_TOKEN},
                                      "bot_token": {"env": "SL_TOKEN_UNSET", "default": BOT_TOKEN}})
    async with httpx.AsyncClient() as http:
        conn = SlackSocketMode(ch, SlackInbound(ch), deliver, http, LinkState())
        task = asyncio.create_task(conn.run())
        try:
            await gw.wait_link()
            payload = block_actions(card, "deploy v2")
            first = await gw.push(payload, kind="interactive")
            second = await gw.push(payload, kind="interactive")  # Slack sends it again: not acknowledged
            await gw.wait(lambda: gw.acked(second))
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await gw.stop()
    assert not gw.acked(first) and acked_before == [False, False]
    [inbound] = got
    assert inbound.message is not None and inbound.message.text == "deploy v2"
    assert inbound.message.action is not None and inbound.message.action.card_message_id == card["ts"]


async def test_a_streamed_reply_becomes_the_card_on_its_final_update(fake: FakeSlack) -> None:
    async with httpx.AsyncClient() as http:
        out = SlackOutbound(channel(api_base=fake.url), http, TokenCache())
        ts = (await out._call("chat.postMessage", {"channel": "C0GENERAL1", "text": "Ready"})).platform_message_id
        assert ts is not None
        pushed = await out.edit_final(reply(card=CARD), ts)
    [update] = fake.updates
    assert pushed.platform_message_id == ts and update["ts"] == ts
    assert not blocks_problems(update["blocks"]) and update["blocks"][-1]["type"] == "actions"
