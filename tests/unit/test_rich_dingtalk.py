"""DingTalk cards and images: ActionCards whose buttons send their value back as the person's message, images
by URL, the card as text in groups; pushed to the local fake of DingTalk, which checks each template's fields."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest

from agentbus.events import Attachment, Button, Card, Chat, ReplyGeneratedData, Sender
from agentbus.services.egress.channels.base import TokenCache
from agentbus.services.egress.channels.dingtalk import DingTalkOutbound
from agentbus.services.egress.channels.dingtalk_cards import press_url
from agentbus.services.egress.channels.parts_text import card_lines
from agentbus.services.egress.ports import Retryable
from agentbus.services.ingress.channels.dingtalk import DingTalkInbound
from tests.fakes.dingtalk import FakeDingTalk, robot_message
from tests.unit.channels.test_dingtalk import APP_KEY, APP_SECRET, ROBOT_SECRET, ROBOT_TOKEN, channel

YES = Button(label="预订", value="book room 4 & 5?/中文", style="primary")
NO = Button(label="No", value="do not book")
CARD = Card(title="Room 4", text="Book room 4 at 10:00?", buttons=(YES, NO))
IMAGE = Attachment(kind="image", name="plan.png", url="https://files.example.com/plan.png")
FILE = Attachment(kind="file", name="minutes.pdf", url="https://files.example.com/minutes.pdf")


@pytest.fixture
async def fake() -> AsyncIterator[FakeDingTalk]:
    f = await FakeDingTalk(app_key=APP_KEY, app_secret=APP_SECRET, robots={ROBOT_TOKEN: ROBOT_SECRET}).start()
    yield f
    await f.stop()


@pytest.fixture
async def out(fake: FakeDingTalk) -> AsyncIterator[DingTalkOutbound]:
    async with httpx.AsyncClient(timeout=5) as http:
        yield DingTalkOutbound(channel(api_base_url=fake.url, oapi_base_url=fake.url), http, TokenCache())


def reply(route: dict[str, Any], chat: Chat, card: Card | None = CARD, attachments: tuple[Attachment, ...] = (),
          text: str = "Shall I book it?", asker: Sender | None = None) -> ReplyGeneratedData:
    return ReplyGeneratedData(agent="assistant", channel="ding", channel_type="dingtalk", chat=chat, text=text,
                              model="fake", reply_route=route, card=card, attachments=attachments, asker=asker)


def direct(fake: FakeDingTalk, session: bool = True) -> dict[str, Any]:
    route: dict[str, Any] = {"conversation_type": "direct", "user_id": "manager0001", "robot_code": APP_KEY}
    if session:
        url, expires = fake.new_session()
        route.update(session_webhook=url, session_webhook_expires_ms=expires)
    return route


DIRECT = Chat(id="cidDirect0001==", type="direct")
GROUP = Chat(id="cidGroup==", type="group")


def pressed(url: str) -> str:
    """What the person's client sends when the button with this URL is pressed."""
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("dtmd", "dingtalkclient", "/sendMessage")
    [content] = parse_qs(parts.query)["content"]
    return content


async def test_a_direct_card_is_an_action_card_whose_buttons_send_their_values(
        fake: FakeDingTalk, out: DingTalkOutbound) -> None:
    await out.push(reply(direct(fake), DIRECT, attachments=(IMAGE, FILE)), uuid.uuid4())
    card, image = fake.sent
    assert (card["via"], card["msgtype"], card["title"]) == ("session", "actionCard", "Room 4")
    assert card["text"] == ("Shall I book it?\n\nminutes.pdf: https://files.example.com/minutes.pdf"
                            "\n\nBook room 4 at 10:00?")
    assert [(title, pressed(url)) for title, url in card["buttons"]] == [("预订", YES.value), ("No", NO.value)]
    assert orjson.loads(card["raw"])["actionCard"]["btnOrientation"] == "0"
    assert (image["msgtype"], image["images"]) == ("markdown", [IMAGE.url])
    assert fake.token_fetches == 0


async def test_through_the_openapi_a_card_takes_the_template_for_its_number_of_buttons(
        fake: FakeDingTalk, out: DingTalkOutbound) -> None:
    route = direct(fake, session=False)
    one = Card(text="Go?", buttons=(YES,))
    six = Card(title="Pick", buttons=tuple(Button(label=f"Option {i}", value=f"option {i}") for i in range(6)))
    for card in (CARD, one, six):
        await out.push(reply(route, DIRECT, card=card), uuid.uuid4())
    await out.push(reply(route, DIRECT, card=None, text="", attachments=(IMAGE,)), uuid.uuid4())
    keys = [orjson.loads(s["raw"])["msgKey"] for s in fake.sent]
    assert keys == ["sampleActionCard2", "sampleActionCard", "sampleMarkdown", "sampleImageMsg"]
    two, single, many, image = fake.sent
    assert [pressed(u) for _, u in two["buttons"]] == [YES.value, NO.value] and two["users"] == ["manager0001"]
    assert single["buttons"] == [("预订", press_url(YES.value))] and single["text"] == "Shall I book it?\n\nGo?"
    assert many["msgtype"] == "markdown" and all(f"[Option {i}]({press_url(f'option {i}')})" in many["text"]
                                                 for i in range(6))
    assert image["photo_url"] == IMAGE.url


async def test_a_group_gets_the_card_as_text_since_a_press_there_would_not_reach_the_robot(
        fake: FakeDingTalk, out: DingTalkOutbound) -> None:
    route = {"conversation_type": "group", "open_conversation_id": GROUP.id, "robot_code": APP_KEY,
             "user_id": "manager0001", **{k: v for k, v in direct(fake).items() if k.startswith("session")}}
    r = reply(route, GROUP, attachments=(IMAGE,), asker=Sender(id="manager0001"))
    await out.push(r, uuid.uuid4())
    text, image = fake.sent
    assert text["msgtype"] == "text" and text["at_user_ids"] == ["manager0001"]
    assert text["text"] == "@manager0001 Shall I book it?\n\n" + "\n".join(card_lines(CARD))
    assert "1. 预订 (answer: book room 4 & 5?/中文)" in text["text"]
    assert image["msgtype"] == "markdown" and image["images"] == [IMAGE.url]
    # a custom group robot likewise
    await out.push(reply({}, Chat(id="ops-room", type="group")), uuid.uuid4())
    assert fake.sent[-1]["via"] == "robot" and fake.sent[-1]["msgtype"] == "text"
    assert "2. No (answer: do not book)" in fake.sent[-1]["text"]


async def test_a_retry_resumes_after_the_messages_that_went_through(fake: FakeDingTalk, out: DingTalkOutbound) -> None:
    r = reply(direct(fake), DIRECT, attachments=(IMAGE,))
    rid = uuid.uuid4()
    fake.fail_next(200, {"errcode": -1, "errmsg": "系统繁忙"}, after=1)
    with pytest.raises(Retryable):
        await out.push(r, rid)
    await out.push(r, rid)
    assert [s["msgtype"] for s in fake.sent] == ["actionCard", "markdown"]


async def test_a_long_answer_goes_first_and_the_card_after_it(fake: FakeDingTalk, out: DingTalkOutbound) -> None:
    long = "长" * 7000  # 21000 bytes: more than one message takes
    await out.push(reply(direct(fake), DIRECT, text=long), uuid.uuid4())
    *texts, card = fake.sent
    assert [s["msgtype"] for s in texts] == ["text", "text"] and "".join(s["text"] for s in texts) == long
    assert card["msgtype"] == "actionCard" and card["text"] == CARD.text


async def test_the_fake_refuses_a_card_without_what_its_template_needs(fake: FakeDingTalk) -> None:
    async with httpx.AsyncClient() as http:
        token = (await http.post(f"{fake.url}/v1.0/oauth2/accessToken",
                                 json={"appKey": APP_KEY, "appSecret": APP_SECRET})).json()["accessToken"]
        param = {"title": "t", "text": "x", "actionTitle1": "a", "actionURL1": "u"}  # the second button missing
        r = await http.post(f"{fake.url}/v1.0/robot/oToMessages/batchSend",
                            headers={"x-acs-dingtalk-access-token": token},
                            json={"robotCode": APP_KEY, "msgKey": "sampleActionCard2", "userIds": ["u1"],
                                  "msgParam": orjson.dumps(param).decode()})
        assert r.status_code == 400
        session, _ = fake.new_session()
        r = await http.post(session, json={"msgtype": "actionCard", "actionCard": {"title": "t", "text": "x",
                                                                                   "btns": []}})
        assert r.json()["errcode"] == 40035
    assert not fake.sent


async def test_a_press_comes_back_as_the_persons_message_with_the_value() -> None:
    """The client sends the content of the button's link as a text message: it reaches ingress as one."""
    inbound = DingTalkInbound(channel())
    got = inbound.normalise(robot_message(pressed(press_url(YES.value)), msg_id="msgPress01"))
    assert got.message is not None and got.message.text == YES.value and got.dedupe_id == "msgPress01"
    assert got.message.chat == Chat(id="cidDirect0001==", type="direct", name=None)
