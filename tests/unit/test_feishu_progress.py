"""Feishu progress: a reaction on the person's message while the agent works (added once, removed when the
reply goes out), and the answer streamed into one shared card PATCHed as it grows and finally into the
reply itself. The real adapter speaks to the fake Feishu over HTTP; lark-oapi's client checks the fake's
reaction and PATCH endpoints."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import lark_oapi as lark
import orjson
import pytest
from lark_oapi.api.im.v1 import (
    CreateMessageReactionRequest,
    CreateMessageReactionRequestBody,
    DeleteMessageReactionRequest,
    Emoji,
    PatchMessageRequest,
    PatchMessageRequestBody,
)

from agentbus.events import (
    Attachment,
    Chat,
    ReplyGenerated,
    ReplyGeneratedData,
    ReplyProgress,
    ReplyProgressData,
    Sender,
)
from agentbus.services.egress.channels.base import TokenCache
from agentbus.services.egress.channels.feishu import FeishuOutbound
from agentbus.services.egress.channels.feishu_progress import MAX_CARD_BYTES
from agentbus.services.egress.handlers import Egress
from agentbus.services.egress.progress import ProgressDisplay
from tests.fakes.feishu import FakeFeishu
from tests.fakes.feishu_rich import card_problem
from tests.unit.channels.test_feishu import APP_ID, APP_SECRET, channel
from tests.unit.fakes_egress import FakeDeliveryLedger, FakeProgressStore, FakeRateLimiter
from tests.unit.test_rich_feishu import CARD, png

ROUTE: dict[str, Any] = {"chat_id": "oc_g1", "message_id": "om_in_1"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeFeishu]:
    f = await FakeFeishu({APP_ID: APP_SECRET}, hooks={"hook-open": None}).start()
    yield f
    await f.stop()


def adapter(fake: FakeFeishu, http: httpx.AsyncClient, progress: str, **over: Any) -> FeishuOutbound:
    out = FeishuOutbound(channel(api_base=fake.url, progress=progress, **over), http, TokenCache())
    out.fetch_schemes, out.fetch_public_only = ("http",), False
    return out


def progress(stage: str, seq: int, text: str = "", chat_type: str = "group") -> ReplyProgress:
    return ReplyProgress.new(ReplyProgressData(
        agent="assistant", channel="fs", channel_type="feishu", chat=Chat(id="oc_g1", type=chat_type),
        reply_route=ROUTE, in_reply_to="om_in_1", stage=stage, seq=seq, text=text,
    ), source="reasoner", tenant="acme", conversation="acme/fs/oc_g1")


def final(text: str, streamed: bool, chat_type: str = "group", **data: Any) -> ReplyGenerated:
    return ReplyGenerated.new(ReplyGeneratedData(
        agent="assistant", channel="fs", channel_type="feishu", chat=Chat(id="oc_g1", type=chat_type), text=text,
        model="m", reply_route=ROUTE, in_reply_to="om_in_1", streamed=streamed, format="markdown",
        asker=Sender(id="ou_alice"), **data,
    ), source="reasoner", tenant="acme", conversation="acme/fs/oc_g1")


def wiring(out: FeishuOutbound) -> tuple[ProgressDisplay, Egress, FakeProgressStore]:
    store = FakeProgressStore()
    display = ProgressDisplay({"fs": out}, store)
    return display, Egress({"fs": out}, FakeDeliveryLedger(), FakeRateLimiter(), progress=display), store


def markdown_of(card: dict[str, Any]) -> str:
    [md] = [e["content"] for e in card["body"]["elements"] if e["tag"] == "markdown"]
    return str(md)


async def test_typing_is_one_reaction_on_the_question_removed_when_the_reply_goes_out(fake: FakeFeishu) -> None:
    async with httpx.AsyncClient() as http:
        display, egress, store = wiring(adapter(fake, http, "typing"))
        await display.show(progress("working", 0))
        await display.show(progress("working", 1))  # a tool loop's second model call: the same reaction
        await display.show(progress("partial", 2, "so far"))  # typing mode: no partials
        assert fake.reaction_log == [("add", "om_in_1", "Typing")] and fake.sent == []
        [rid] = fake.reactions
        assert store.rows[("fs", "om_in_1")]["typing_id"] == rid
        [done] = await egress.push_reply(final("**done**", streamed=False))
    assert done.data.status == "delivered"
    assert fake.reaction_log == [("add", "om_in_1", "Typing"), ("delete", "om_in_1", "Typing")]
    assert fake.reactions == {} and [m["msg_type"] for m in fake.sent] == ["post"] and not fake.rejected


async def test_a_reply_that_goes_out_while_the_reaction_is_added_takes_it_away(fake: FakeFeishu) -> None:
    async with httpx.AsyncClient() as http:
        out = adapter(fake, http, "typing", typing_emoji="OnIt")
        display, egress, _ = wiring(out)
        gate, entered = asyncio.Event(), asyncio.Event()
        mark = out.mark_working

        async def slow_mark(d: ReplyProgressData) -> str:
            entered.set()
            await gate.wait()
            return await mark(d)

        out.mark_working = slow_mark  # type: ignore[method-assign]
        working = asyncio.create_task(display.show(progress("working", 0)))
        await entered.wait()
        [done] = await egress.push_reply(final("answer", streamed=False))
        assert done.data.status == "delivered" and fake.reaction_log == []
        gate.set()
        await working
    assert fake.reaction_log == [("add", "om_in_1", "OnIt"), ("delete", "om_in_1", "OnIt")] and not fake.reactions


async def test_a_streamed_answer_is_one_card_patched_into_the_final_text(fake: FakeFeishu) -> None:
    async with httpx.AsyncClient() as http:
        display, egress, _ = wiring(adapter(fake, http, "stream"))
        await display.show(progress("working", 0, chat_type="direct"))
        await display.show(progress("partial", 1, "Once upon", chat_type="direct"))
        await display.show(progress("partial", 2, "Once upon a *time*", chat_type="direct"))
        [card] = fake.sent
        assert card["msg_type"] == "interactive" and card["reply_to"] == "om_in_1"
        assert card["content_json"]["config"] == {"update_multi": True} and card_problem(card["content_json"]) is None
        assert [markdown_of(p["content_json"]) for p in fake.patches] == ["Once upon a *time*"]
        assert markdown_of(fake.card_of(card["message_id"])) == "Once upon a *time*"
        await display.show(progress("partial", 1, "Once", chat_type="direct"))  # stale: dropped
        assert len(fake.patches) == 1
        text = "Once upon a *time*, there was a broker."
        [done] = await egress.push_reply(final(text, streamed=True, chat_type="direct"))
        # the same reply, not streamed, to compare its text with
        plain = adapter(fake, http, "off")
        await plain.push(final(text, streamed=False, chat_type="direct").data, uuid.uuid4())
    assert done.data.status == "delivered" and done.data.platform_message_id == card["message_id"]
    streamed_card, plain_post = fake.sent
    assert streamed_card is card and len(fake.patches) == 2
    assert markdown_of(fake.card_of(card["message_id"])) == plain_post["content_json"]["zh_cn"]["content"][0][0]["text"]
    assert fake.reaction_log == [("add", "om_in_1", "Typing"), ("delete", "om_in_1", "Typing")]
    assert not fake.rejected


async def test_the_final_card_has_the_replys_title_buttons_and_mention_and_images_follow(
        fake: FakeFeishu) -> None:
    from starlette.responses import Response
    from starlette.routing import Route

    from agentbus.http import LoopbackServer

    server = LoopbackServer([Route("/cat.png", lambda _: Response(png(), media_type="image/png"))])
    await server.start()
    try:
        async with httpx.AsyncClient() as http:
            display, egress, _ = wiring(adapter(fake, http, "stream"))
            await display.show(progress("partial", 1, "我可以"))
            reply = final("我可以发布。", streamed=True, card=CARD,
                          attachments=(Attachment(kind="image", url=server.url + "/cat.png", name="cat.png"),))
            [done] = await egress.push_reply(reply)
            plain = adapter(fake, http, "off")
            await plain.push(final("我可以发布。", streamed=False, card=CARD).data, uuid.uuid4())
    finally:
        await server.stop()
    card, image, unstreamed = fake.sent
    now = fake.card_of(card["message_id"])
    assert done.data.platform_message_id == card["message_id"] and image["msg_type"] == "image"
    assert now["config"] == {"update_multi": True} and now["header"] == unstreamed["content_json"]["header"]
    assert now["body"] == unstreamed["content_json"]["body"]  # text with the mention, and the buttons
    assert markdown_of(now).startswith("<at id=ou_alice></at> 我可以发布。") and not fake.rejected


async def test_a_streamed_card_recalled_meanwhile_is_sent_anew_and_a_long_partial_shows_its_end(
        fake: FakeFeishu) -> None:
    async with httpx.AsyncClient() as http:
        display, egress, _ = wiring(adapter(fake, http, "stream"))
        await display.show(progress("partial", 1, "start "))
        [card] = fake.sent
        long = "start " + "长" * 12_000 + " the end"  # 36 KB of text: more than a card holds
        await display.show(progress("partial", 2, long))
        shown = markdown_of(fake.card_of(card["message_id"]))
        assert shown.startswith("…") and shown.endswith(" the end") and len(shown.encode()) < MAX_CARD_BYTES
        fake.recalled.add(card["message_id"])
        [done] = await egress.push_reply(final("short answer", streamed=True))
    assert done.data.status == "delivered" and done.data.platform_message_id != card["message_id"]
    [[anew]] = fake.sent[-1]["content_json"]["zh_cn"]["content"]
    assert anew["text"] == '<at user_id="ou_alice"></at> short answer'


async def test_nothing_is_shown_without_the_app_bot_and_stream_needs_it(fake: FakeFeishu) -> None:
    hook = {"bot_webhook": {"token": {"env": "FS_HOOK_UNSET", "default": "hook-open"}}}
    with pytest.raises(ValueError, match="custom bot webhook cannot edit"):
        channel(app_id=None, app_secret=None, progress="stream", **hook)
    async with httpx.AsyncClient() as http:
        display, egress, store = wiring(adapter(fake, http, "typing", app_id=None, app_secret=None, **hook))
        await display.show(progress("working", 0))
        await display.show(progress("working", 1))
        [done] = await egress.push_reply(final("via the hook", streamed=False))
    assert fake.reaction_log == [] and store.rows[("fs", "om_in_1")]["typing_id"] == ""
    assert done.data.status == "delivered" and len(fake.hook_sent) == 1


async def test_lark_oapi_speaks_to_the_fakes_reactions_and_card_updates(fake: FakeFeishu) -> None:
    app = f"cli_{uuid.uuid4().hex[:12]}"  # lark-oapi caches tokens per app id across clients: a fresh app
    fake.apps[app] = "sdk-secret"
    client = lark.Client.builder().app_id(app).app_secret("sdk-secret").domain(fake.url).build()
    async with httpx.AsyncClient() as http:
        out = adapter(fake, http, "stream")
        card_id = await out.post_partial(progress("partial", 1, "draft").data)
        await out._send(final("t", False).data, "text", orjson.dumps({"text": "plain"}).decode(), "u-text")
    text_id = fake.sent[-1]["message_id"]

    def react(message_id: str, emoji: str) -> Any:
        return client.im.v1.message_reaction.create(
            CreateMessageReactionRequest.builder().message_id(message_id).request_body(
                CreateMessageReactionRequestBody.builder().reaction_type(Emoji.builder().emoji_type(emoji).build())
                .build()).build())

    def patch(message_id: str, card: dict[str, Any] | str) -> Any:
        content = card if isinstance(card, str) else orjson.dumps(card).decode()
        return client.im.v1.message.patch(PatchMessageRequest.builder().message_id(message_id).request_body(
            PatchMessageRequestBody.builder().content(content).build()).build())

    added = await asyncio.to_thread(react, "om_in_1", "Typing")
    assert added.success() and added.data.reaction_id and added.data.reaction_type.emoji_type == "Typing"
    assert added.data.operator.operator_type == "app"
    assert (await asyncio.to_thread(react, "om_in_1", "NoSuchEmoji")).code == 231001
    wrong = await asyncio.to_thread(client.im.v1.message_reaction.delete, DeleteMessageReactionRequest.builder()
                                    .message_id("om_other").reaction_id(added.data.reaction_id).build())
    assert wrong.code == 231010
    gone = await asyncio.to_thread(client.im.v1.message_reaction.delete, DeleteMessageReactionRequest.builder()
                                   .message_id("om_in_1").reaction_id(added.data.reaction_id).build())
    assert gone.success() and fake.reactions == {}

    shared = {"schema": "2.0", "config": {"update_multi": True},
              "body": {"elements": [{"tag": "markdown", "content": "final"}]}}
    ok = await asyncio.to_thread(patch, card_id, shared)
    assert ok.success() and markdown_of(fake.card_of(card_id)) == "final"
    assert (await asyncio.to_thread(patch, card_id, {**shared, "config": {}})).code == 230099  # not shared after
    assert (await asyncio.to_thread(patch, text_id, shared)).code == 230001  # a text message cannot be patched
    big = {**shared, "body": {"elements": [{"tag": "markdown", "content": "x" * MAX_CARD_BYTES}]}}
    assert (await asyncio.to_thread(patch, card_id, big)).code == 230025
    assert (await asyncio.to_thread(patch, "om_nobody", shared)).code == 230001
