"""DingTalk progress: the answer streamed into one StandardCard interactive card of the app robot (sent once,
updated as it grows, updated into the reply at the end, the rest of the reply after it); the custom robot
cannot stream. The real adapter speaks to the fake DingTalk over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from agentbus.events import Chat, ReplyGenerated, ReplyGeneratedData, ReplyProgress, ReplyProgressData
from agentbus.services.egress.channels.base import TokenCache
from agentbus.services.egress.channels.dingtalk import DingTalkOutbound
from agentbus.services.egress.handlers import Egress
from agentbus.services.egress.progress import ProgressDisplay
from tests.fakes.dingtalk import FakeDingTalk
from tests.fakes.dingtalk_progress import card_text
from tests.unit.channels.test_dingtalk import APP_KEY, APP_SECRET, ROBOT_SECRET, ROBOT_TOKEN, channel
from tests.unit.fakes_egress import FakeDeliveryLedger, FakeProgressStore, FakeRateLimiter
from tests.unit.test_rich_dingtalk import CARD, IMAGE

DIRECT_ROUTE: dict[str, Any] = {"conversation_type": "direct", "user_id": "manager0001", "robot_code": APP_KEY}
GROUP_ROUTE: dict[str, Any] = {"conversation_type": "group", "open_conversation_id": "cidGroup==",
                               "robot_code": APP_KEY}


@pytest.fixture
async def fake() -> AsyncIterator[FakeDingTalk]:
    f = await FakeDingTalk(app_key=APP_KEY, app_secret=APP_SECRET, robots={ROBOT_TOKEN: ROBOT_SECRET}).start()
    yield f
    await f.stop()


def progress(stage: str, seq: int, text: str = "", route: dict[str, Any] = DIRECT_ROUTE,
             chat: str = "cidDirect0001==", question: str = "msg-1") -> ReplyProgress:
    return ReplyProgress.new(ReplyProgressData(
        agent="assistant", channel="ding", channel_type="dingtalk", chat=Chat(id=chat, type=route.get(
            "conversation_type", "group")), reply_route=route, in_reply_to=question, stage=stage, seq=seq, text=text,
    ), source="reasoner", tenant="acme", conversation=f"acme/ding/{chat}")


def final(text: str, streamed: bool, route: dict[str, Any] = DIRECT_ROUTE, chat: str = "cidDirect0001==",
          question: str = "msg-1", **data: Any) -> ReplyGenerated:
    return ReplyGenerated.new(ReplyGeneratedData(
        agent="assistant", channel="ding", channel_type="dingtalk", chat=Chat(id=chat, type=route.get(
            "conversation_type", "group")), text=text, model="m", reply_route=route, in_reply_to=question,
        streamed=streamed, format="markdown", **data,
    ), source="reasoner", tenant="acme", conversation=f"acme/ding/{chat}")


def wiring(out: DingTalkOutbound) -> tuple[ProgressDisplay, Egress]:
    display = ProgressDisplay({"ding": out}, FakeProgressStore())
    return display, Egress({"ding": out}, FakeDeliveryLedger(), FakeRateLimiter(), progress=display)


def adapter(fake: FakeDingTalk, http: httpx.AsyncClient, progress: str = "stream") -> DingTalkOutbound:
    return DingTalkOutbound(channel(api_base_url=fake.url, oapi_base_url=fake.url, progress=progress), http,
                            TokenCache())


async def test_a_streamed_answer_is_one_card_updated_into_the_final_text(fake: FakeDingTalk) -> None:
    async with httpx.AsyncClient() as http:
        display, egress = wiring(adapter(fake, http))
        await display.show(progress("working", 0))  # DingTalk has no typing indicator: nothing
        assert fake.sent == []
        await display.show(progress("partial", 1, "从前"))
        await display.show(progress("partial", 2, "从前有一个 **broker**"))
        [sent] = fake.sent
        assert sent["via"] == "card" and sent["users"] == ["manager0001"]
        biz = sent["biz"]
        assert card_text(fake, biz) == "从前有一个 **broker**" and len(fake.cards[biz]["updates"]) == 1
        [done] = await egress.push_reply(final("从前有一个 **broker**，它从不丢消息。", streamed=True))
    assert done.data.status == "delivered" and done.data.platform_message_id == biz
    assert fake.sent == [sent] and card_text(fake, biz) == "从前有一个 **broker**，它从不丢消息。"
    assert fake.cards[biz]["card"]["header"]["title"]["text"] and not fake.rejected


async def test_the_rest_of_a_reply_follows_its_card_and_groups_are_addressed_by_conversation(
        fake: FakeDingTalk) -> None:
    async with httpx.AsyncClient() as http:
        display, egress = wiring(adapter(fake, http))
        await display.show(progress("partial", 1, "Shall I", route=GROUP_ROUTE, chat="cidGroup=="))
        [card] = fake.sent
        assert card["conversation"] == "cidGroup==" and card["users"] is None
        await egress.push_reply(final("Shall I book it?", streamed=True, route=GROUP_ROUTE, chat="cidGroup==",
                                      attachments=(IMAGE,)))
        assert card_text(fake, card["biz"]) == "Shall I book it?"
        assert [(m["via"], m["msgtype"]) for m in fake.sent[1:]] == [("group", "image")]
        # a direct card with buttons: the answer in the streamed card, the buttons in an ActionCard after it
        fake.sent.clear()
        display, egress = wiring(adapter(fake, http))
        await display.show(progress("partial", 1, "Shall", question="msg-2"))
        [streamed] = fake.sent
        await egress.push_reply(final("Shall I book it?", streamed=True, card=CARD, question="msg-2"))
    assert card_text(fake, streamed["biz"]) == "Shall I book it?"
    [buttons] = fake.sent[1:]
    assert buttons["title"] == "Room 4" and buttons["text"] == "Book room 4 at 10:00?" and not fake.rejected


async def test_the_fake_checks_what_the_card_api_checks_and_stream_needs_the_app_robot(fake: FakeDingTalk) -> None:
    robot = {"custom_robots": {"ops-room": {"access_token": {"env": "T_UNSET", "default": ROBOT_TOKEN}}}}
    with pytest.raises(ValueError, match="custom robots cannot edit"):
        channel(app_key=None, app_secret=None, callback_token=None, callback_aes_key=None, progress="stream",
                **robot)
    async with httpx.AsyncClient() as http:
        out = adapter(fake, http)
        display, _ = wiring(out)
        await display.show(progress("partial", 1, "x", chat="ops-room"))  # a custom robot's chat: not streamed
        assert fake.sent == []
        token = await out._token()
        base = {"cardTemplateId": "StandardCard", "cardBizId": str(uuid.uuid4()), "robotCode": APP_KEY,
                "cardData": orjson.dumps({"contents": [{"type": "markdown", "text": "hi", "id": "a"}]}).decode(),
                "openConversationId": "cidGroup=="}

        async def send(body: dict[str, Any], method: str = "POST",
                       path: str = "/v1.0/im/v1.0/robot/interactiveCards/send") -> httpx.Response:
            return await http.request(method, fake.url + path, content=orjson.dumps(body),
                                      headers={"content-type": "application/json",
                                               "x-acs-dingtalk-access-token": token})

        assert (await send({**base, "cardTemplateId": "MyConsoleTemplate"})).json()["code"] == "cardTemplateInvalid"
        both = {**base, "singleChatReceiver": orjson.dumps({"userId": "u1"}).decode()}
        assert (await send(both)).json()["code"] == "param.invalid"
        assert (await send({**base, "cardData": "{}"})).json()["code"] == "param.invalid"
        ok = await send(base)
        assert ok.status_code == 200 and ok.json()["processQueryKey"]
        assert (await send(base)).json()["code"] == "card.outTraceIdError"  # the same cardBizId again
        update = {"cardBizId": "never-sent", "cardData": base["cardData"]}
        assert (await send(update, "PUT", "/v1.0/im/robots/interactiveCards")).json()["code"] == "param.invalid"
        assert (await send({**update, "cardBizId": base["cardBizId"]}, "PUT",
                           "/v1.0/im/robots/interactiveCards")).status_code == 200
