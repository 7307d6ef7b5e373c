"""Cards, images and presses on the generic webhook (signed pushes to a verifying sink, signed presses in) and
on WeCom (group robots and the app, against the local fake of WeCom)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from agentbus.channeltypes import WebhookChannel
from agentbus.channeltypes.wecom import WeComChannel
from agentbus.cli.tools import signed_request
from agentbus.events import Action, Attachment, Button, Card, Chat, ReplyGeneratedData, Sender
from agentbus.services.egress.channels.base import TokenCache
from agentbus.services.egress.channels.parts_text import text_with_parts
from agentbus.services.egress.channels.webhook import WebhookOutbound
from agentbus.services.egress.channels.wecom import WeComOutbound
from agentbus.services.ingress.accept import policy
from agentbus.services.ingress.channels.base import HttpRequest, Rejected
from agentbus.services.ingress.channels.webhook import WebhookInbound
from tests.fakes.wecom import FakeWeCom
from tests.support.platform import secret_for
from tests.support.servers import WebhookSink

CARD = Card(title="Room 4", text="Book room 4 at 10:00?",
            buttons=(Button(label="Yes", value="book room 4", style="primary"), Button(label="No", value="no")))
IMAGE = Attachment(kind="image", name="plan.png", content_type="image/png", url="https://files.example.com/plan.png")
FILE = Attachment(kind="file", name="minutes.pdf", url="https://files.example.com/minutes.pdf")


def reply(channel: str, channel_type: str, chat: Chat, text: str = "Shall I book it?", fmt: str = "text",
          card: Card | None = None, attachments: tuple[Attachment, ...] = (),
          asker: Sender | None = None) -> ReplyGeneratedData:
    return ReplyGeneratedData(agent="assistant", channel=channel, channel_type=channel_type, chat=chat, text=text,
                              format=fmt, model="fake", card=card, attachments=attachments, asker=asker)


# ---------------------------------------------------------------------- generic webhook out


@pytest.fixture
async def sink() -> AsyncIterator[WebhookSink]:
    s = await WebhookSink({"hook": secret_for("hook")}).start()
    yield s
    await s.stop()


def hook(push_url: str | None = None, **over: Any) -> WebhookChannel:
    return WebhookChannel.model_validate({"id": "hook", "type": "webhook", "tenant": "acme", "agent": "assistant",
                                          "secret": {"env": "T_HOOK_SECRET", "default": secret_for("hook")},
                                          "push_url": push_url, **over})


async def test_a_push_carries_the_card_and_attachments_as_in_the_event_and_the_text_untouched(
        sink: WebhookSink) -> None:
    async with httpx.AsyncClient() as http:
        out = WebhookOutbound(hook(sink.url_for("hook")), http, TokenCache())
        r = reply("hook", "webhook", Chat(id="c1"), card=CARD, attachments=(IMAGE, FILE))
        rid = uuid.uuid4()
        await out.push(r, rid)
    [got] = sink.by_reply[str(rid)]
    assert got["text"] == "Shall I book it?", "the receiver renders the parts: no text fallback"
    assert Card.model_validate(got["card"]) == CARD
    assert [Attachment.model_validate(a) for a in got["attachments"]] == [IMAGE, FILE]
    assert got["card"]["buttons"][0] == {"label": "Yes", "value": "book room 4", "style": "primary"}
    assert not sink.rejected


async def test_a_push_without_parts_is_the_body_it_always_was(sink: WebhookSink) -> None:
    async with httpx.AsyncClient() as http:
        out = WebhookOutbound(hook(sink.url_for("hook")), http, TokenCache())
        rid = uuid.uuid4()
        await out.push(reply("hook", "webhook", Chat(id="c2"), text="plain"), rid)
    [got] = sink.by_reply[str(rid)]
    assert {k: v for k, v in got.items() if not k.startswith("_")} == {
        "type": "reply", "reply_id": str(rid), "conversation": "c2", "text": "plain", "format": "text",
        "agent": "assistant", "model": "fake", "in_reply_to": None}


# ---------------------------------------------------------------------- generic webhook in: presses


def signed(payload: dict[str, Any], msg_id: str | None = None) -> HttpRequest:
    body, headers = signed_request(secret_for("hook"), payload, msg_id)
    return HttpRequest("POST", "/v1/webhooks/hook", {k.lower(): v for k, v in headers.items()}, {}, body,
                       time.time())


async def test_a_press_is_a_message_of_the_chat_with_the_value_as_its_text() -> None:
    inbound = WebhookInbound(hook())
    press = {"conversation": "team", "sender": {"id": "bob", "name": "Bob"}, "chat_type": "group",
             "message_id": "press-1", "action": {"value": "book room 4", "label": "Yes", "card_message_id": "r-9"}}
    got = await inbound.receive(signed(press))
    m = got.message
    assert m is not None and got.answer.status == 202
    assert (m.text, m.chat, m.sender.id, m.platform_message_id) == ("book room 4", Chat(id="team", type="group"),
                                                                   "bob", "press-1")
    assert m.action == Action(value="book room 4", label="Yes", card_message_id="r-9")
    assert m.reply_route == {"conversation": "team"} and not m.mentioned_bot
    # a group needs a mention, a press of the bot's card does not
    assert policy(hook(), m) == (None, None)
    plain = await inbound.receive(signed({"conversation": "team", "sender": {"id": "bob"}, "text": "hi",
                                          "chat_type": "group"}))
    assert plain.message is not None and plain.message.action is None
    assert policy(hook(), plain.message)[0] == "group message without a mention"
    # the text, when the receiver gives one, is kept; the id of a press without message_id is its webhook-id
    again = await inbound.receive(signed({"conversation": "c", "sender": {"id": "bob"}, "text": "yes please",
                                          "action": {"value": "v"}}, msg_id="msg_press_2"))
    assert again.message is not None and again.message.text == "yes please"
    assert again.message.action == Action(value="v") and again.dedupe_id == "msg_press_2"
    assert again.message.platform_message_id == "msg_press_2"


@pytest.mark.parametrize(("action", "problem"), [
    ({"value": "v", "extra": 1}, "action.extra: Extra inputs are not permitted"),
    ({"value": "v" * 201}, "action.value: String should have at most 200 characters"),
    ({"value": ""}, "action.value: String should have at least 1 character"),
    ({"label": "Yes"}, "action.value: Field required"),
    ({"value": "v", "label": "x" * 41}, "action.label"),
    ({"value": "v", "card_message_id": "x" * 257}, "action.card_message_id"),
    ("book", "action: Input should be a valid dictionary"),
    ({"value": 3}, "action.value: Input should be a valid string"),
])
async def test_a_bad_press_is_refused_with_the_reason(action: Any, problem: str) -> None:
    with pytest.raises(Rejected) as err:
        await WebhookInbound(hook()).receive(signed({"conversation": "c", "sender": {"id": "a"}, "action": action}))
    assert err.value.status == 422 and problem in err.value.reason


async def test_neither_text_nor_action_is_refused() -> None:
    with pytest.raises(Rejected) as err:
        await WebhookInbound(hook()).receive(signed({"conversation": "c", "sender": {"id": "a"}}))
    assert err.value.status == 422 and "text is required" in err.value.reason


# ---------------------------------------------------------------------- WeCom


CORP, AGENT, SECRET, ROBOT_KEY = "wwcorp0001", 1000002, "wecom-secret-0001", "robot-key-0001"


@pytest.fixture
async def wecom() -> AsyncIterator[FakeWeCom]:
    f = await FakeWeCom(corp_id=CORP, secret=SECRET, agent_id=AGENT, robot_keys={ROBOT_KEY}).start()
    yield f
    await f.stop()


def wecom_out(fake: FakeWeCom, http: httpx.AsyncClient) -> WeComOutbound:
    ch = WeComChannel.model_validate({
        "id": "wecom", "type": "wecom", "tenant": "acme", "agent": "assistant", "corp_id": CORP, "agent_id": AGENT,
        "secret": {"env": "T_WECOM_SECRET", "default": SECRET},
        "group_robots": {"ops-room": {"env": "T_WECOM_ROBOT", "default": ROBOT_KEY}}, "api_base_url": fake.url})
    return WeComOutbound(ch, http, TokenCache())


async def test_a_robot_card_is_text_and_an_image_a_news_article(wecom: FakeWeCom) -> None:
    r = reply("wecom", "wecom", Chat(id="ops-room", type="group"), card=CARD, attachments=(IMAGE, FILE),
              asker=Sender(id="zhangsan"))
    async with httpx.AsyncClient() as http:
        await wecom_out(wecom, http).push(r, uuid.uuid4())
    text, news = wecom.sent
    assert (text["via"], text["msgtype"], text["mentioned"]) == ("robot", "text", ["zhangsan"])
    assert text["text"] == text_with_parts(r, attachments=False) + "\n\nminutes.pdf: https://files.example.com/minutes.pdf"
    assert "1. Yes (answer: book room 4)" in text["text"]
    assert (news["via"], news["msgtype"]) == ("robot", "news")
    assert news["articles"] == [{"title": "plan.png", "url": IMAGE.url, "picurl": IMAGE.url}]


async def test_an_app_reply_sends_the_image_as_news_too_and_a_retry_does_not_resend_the_text(
        wecom: FakeWeCom) -> None:
    r = reply("wecom", "wecom", Chat(id="zhangsan"), fmt="markdown", text="**Plan**", attachments=(IMAGE,))
    rid = uuid.uuid4()
    async with httpx.AsyncClient() as http:
        out = wecom_out(wecom, http)
        wecom.fail_next({"errcode": 45009, "errmsg": "api freq out of limit"}, after=1)
        with pytest.raises(Exception, match="45009"):
            await out.push(r, rid)
        await out.push(r, rid)
    assert [(s["msgtype"], s.get("users")) for s in wecom.sent] == [("markdown", ["zhangsan"]),
                                                                    ("news", ["zhangsan"])]
    assert wecom.sent[0]["text"] == "**Plan**"


async def test_a_wecom_reply_without_parts_is_sent_as_before(wecom: FakeWeCom) -> None:
    async with httpx.AsyncClient() as http:
        await wecom_out(wecom, http).push(reply("wecom", "wecom", Chat(id="ops-room", type="group")), uuid.uuid4())
    [sent] = wecom.sent
    assert orjson.loads(sent["raw"]) == {"msgtype": "text", "text": {"content": "Shall I book it?"}}
