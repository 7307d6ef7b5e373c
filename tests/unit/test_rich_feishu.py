"""Feishu cards, images and button presses: rendered to the fake platform (card JSON 2.0, image upload), the
press callback normalised (checked with lark-oapi's own dispatcher and models), bad presses refused."""

from __future__ import annotations

import asyncio
import io
import struct
import uuid
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import lark_oapi as lark
import orjson
import pytest
from lark_oapi.core.model import RawRequest
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from agentbus.events import Action, Attachment, Button, Card, Chat, ReplyGeneratedData, Sender
from agentbus.http import LoopbackServer
from agentbus.services.egress.channels.base import TokenCache
from agentbus.services.egress.channels.feishu import FeishuOutbound
from agentbus.services.egress.channels.feishu_parts import ImageFailed, fetch_image
from agentbus.services.egress.ports import Permanent, Retryable
from agentbus.services.ingress.accept import Acceptor
from agentbus.services.ingress.channels.base import Rejected
from agentbus.services.ingress.channels.feishu import FeishuInbound
from agentbus.services.ingress.longconn.base import LinkState
from agentbus.services.ingress.longconn.feishu import FeishuLongConnection
from tests.fakes.feishu import FakeFeishu, event_request
from tests.fakes.feishu_rich import card_action_event, card_problem, pressed
from tests.fakes.feishu_ws import FakeFeishuGateway
from tests.unit.channels.test_feishu import APP_ID, APP_SECRET, KEY, TOKEN, channel, receive
from tests.unit.channels.test_feishu_stream import APP_ID as STREAM_APP
from tests.unit.channels.test_feishu_stream import APP_SECRET as STREAM_SECRET
from tests.unit.channels.test_feishu_stream import Recorder
from tests.unit.channels.test_feishu_stream import channel as stream_channel
from tests.unit.fakes_ingress import FakeDedupe, FakePublisher


def png(w: int = 2, h: int = 2) -> bytes:
    """A real (tiny) PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * w for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


CARD = Card(title="发布 1.4?", text="Release 1.4 is ready.",
            buttons=(Button(label="Deploy", value="deploy 1.4", style="primary"),
                     Button(label="Cancel", value="cancel", style="danger")))


def reply(card: Card | None = None, attachments: tuple[Attachment, ...] = (), **route: Any) -> ReplyGeneratedData:
    return ReplyGeneratedData(
        agent="assistant", channel="fs", channel_type="feishu", chat=Chat(id="oc_g1", type="group"),
        text="我可以发布。", model="m", reply_route={"chat_id": "oc_g1", "message_id": "om_in_1", **route},
        asker=Sender(id="ou_alice"), card=card, attachments=attachments)


@pytest.fixture
async def fake() -> AsyncIterator[FakeFeishu]:
    f = await FakeFeishu({APP_ID: APP_SECRET}, hooks={"hook-open": None}).start()
    yield f
    await f.stop()


@pytest.fixture
async def images() -> AsyncIterator[str]:
    """A web server holding the reply's images: a PNG, a page, one too large, and one that is missing."""
    async def serve(request: Request) -> Response:
        name = request.path_params["name"]
        if name == "cat.png":
            return Response(png(), media_type="image/png")
        if name == "page.png":
            return Response(b"<html>not an image</html>", media_type="text/html")
        if name == "huge.png":  # streamed without a length: refused once more than 10 MB came
            async def body() -> AsyncIterator[bytes]:
                yield png()
                for _ in range(11):
                    yield b"\0" * 2**20
            return StreamingResponse(body(), media_type="image/png")
        return Response(b"gone", status_code=404)

    server = LoopbackServer([Route("/img/{name}", serve)])
    await server.start()
    yield server.url + "/img/"
    await server.stop()


def outbound(fake: FakeFeishu, http: httpx.AsyncClient, **over: Any) -> FeishuOutbound:
    out = FeishuOutbound(channel(api_base=fake.url, **over), http, TokenCache())
    out.fetch_schemes, out.fetch_public_only = ("http",), False  # the test's image server: http on loopback
    return out


async def test_card_goes_out_as_card_json_2_with_callback_buttons(fake: FakeFeishu) -> None:
    async with httpx.AsyncClient() as http:
        rid = uuid.uuid4()
        pushed = await outbound(fake, http).push(reply(CARD, thread_id="omt_1"), rid)
    [sent] = fake.sent
    card = sent["content_json"]
    assert sent["msg_type"] == "interactive" and sent["uuid"] == str(rid) and sent["reply_to"] == "om_in_1"
    assert sent["reply_in_thread"] is True and card_problem(card) is None and not fake.rejected
    assert card["header"]["title"] == {"tag": "plain_text", "content": "发布 1.4?"}
    md, deploy, cancel = card["body"]["elements"]
    assert md == {"tag": "markdown", "content": "<at id=ou_alice></at> 我可以发布。\n\nRelease 1.4 is ready."}
    assert sent["mentions"] == ["ou_alice"]
    assert (deploy["type"], cancel["type"]) == ("primary", "danger")
    assert pressed(sent, "Deploy") == {"value": "deploy 1.4", "label": "Deploy", "chat_type": "group",
                                       "thread_id": "omt_1"}
    assert pushed.platform_message_id == sent["message_id"]


async def test_images_are_uploaded_others_become_link_lines(fake: FakeFeishu, images: str) -> None:
    parts = (Attachment(kind="image", url=images + "cat.png", name="cat.png"),
             Attachment(kind="image", url=images + "page.png", name="page.png"),
             Attachment(kind="image", url=images + "huge.png", name="huge.png"),
             Attachment(kind="image", url=images + "nope.png", name="nope.png"),
             Attachment(kind="file", url="https://files.example/report.pdf", name="report.pdf"))
    async with httpx.AsyncClient() as http:
        rid = uuid.uuid4()
        await outbound(fake, http).push(reply(attachments=parts), rid)
    text, image = fake.sent
    assert text["msg_type"] == "text" and text["uuid"] == str(rid)
    assert text["content_json"]["text"] == (
        f'<at user_id="ou_alice"></at> 我可以发布。\n\npage.png: {images}page.png\nhuge.png: {images}huge.png\n'
        f"nope.png: {images}nope.png\nreport.pdf: https://files.example/report.pdf")
    assert image["msg_type"] == "image" and image["reply_to"] == "om_in_1" and image["uuid"] != str(rid)
    assert fake.images[image["content_json"]["image_key"]] == png() and len(fake.images) == 1
    assert not fake.rejected


async def test_only_https_urls_of_public_hosts_are_fetched(fake: FakeFeishu, images: str) -> None:
    local = images.replace("http://", "https://")
    async with httpx.AsyncClient() as http:
        out = FeishuOutbound(channel(api_base=fake.url), http, TokenCache())
        await out.push(reply(CARD, (Attachment(kind="image", url=images + "cat.png", name="cat.png"),
                                    Attachment(kind="image", url=local + "cat.png", name="local.png"),
                                    Attachment(kind="image", url="https://[::ffff:10.0.0.1]/a.png", name="v6.png"))),
                       uuid.uuid4())
        with pytest.raises(ImageFailed, match="not public"):
            await fetch_image(http, Attachment(kind="image", url=local + "cat.png"), ("https",))
        with pytest.raises(ImageFailed, match="not a https URL"):
            await fetch_image(http, Attachment(kind="image", url=images + "cat.png"), ("https",))
    [sent] = fake.sent
    text = sent["content_json"]["body"]["elements"][0]["content"]
    assert f"cat.png: {images}cat.png\nlocal.png: {local}cat.png\nv6.png: https://[::ffff:10.0.0.1]/a.png" in text
    assert not fake.images


async def test_an_image_is_fetched_from_the_checked_address_with_its_name_kept(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name is resolved once, every address checked, and the request goes to a checked
    address with the name only in Host and TLS (SNI, the certificate check), never resolved again."""
    from agentbus.services.egress.channels import feishu_parts

    answers = {"img.example.com": ["93.184.215.14"], "inward.example.com": ["93.184.215.14", "10.0.0.5"]}

    async def resolve(host: str, port: int) -> list[str]:
        return answers[host]

    seen: list[httpx.Request] = []

    def serve(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=png(), headers={"content-type": "image/png"})

    monkeypatch.setattr(feishu_parts, "system_resolve", resolve)
    async with httpx.AsyncClient(transport=httpx.MockTransport(serve)) as http:
        data, ctype = await fetch_image(http, Attachment(kind="image", url="https://img.example.com:8443/a.png"),
                                        ("https",))
        assert (data, ctype) == (png(), "image/png")
        with pytest.raises(ImageFailed, match="not public: inward.example.com resolves to 10.0.0.5"):
            await fetch_image(http, Attachment(kind="image", url="https://inward.example.com/a.png"), ("https",))
    [request] = seen
    assert str(request.url) == "https://93.184.215.14:8443/a.png"
    assert request.headers["host"] == "img.example.com:8443"
    assert request.extensions["sni_hostname"] == "img.example.com"


async def test_a_retry_sends_only_the_parts_not_yet_sent(fake: FakeFeishu, images: str) -> None:
    parts = (Attachment(kind="image", url=images + "cat.png"), Attachment(kind="image", url=images + "cat.png"))
    async with httpx.AsyncClient() as http:
        out = outbound(fake, http)
        rid = uuid.uuid4()
        fake.plan = [None, (500, 1000, "internal error", {})]  # the card goes out, the first image does not
        with pytest.raises(Retryable):
            await out.push(reply(CARD, parts), rid)
        assert [m["msg_type"] for m in fake.sent] == ["interactive"]
        pushed = await out.push(reply(CARD, parts), rid)
    assert [m["msg_type"] for m in fake.sent] == ["interactive", "image", "image"]
    assert len(fake.images) == 2  # uploaded once each, on the first attempt
    assert pushed.platform_message_id == fake.sent[0]["message_id"] and len({m["uuid"] for m in fake.sent}) == 3


async def test_custom_bot_webhook_gets_the_parts_as_text(fake: FakeFeishu) -> None:
    async with httpx.AsyncClient() as http:
        out = outbound(fake, http, app_id=None, app_secret=None, bot_webhook={"token": {"env": "X_UNSET",
                                                                                         "default": "hook-open"}})
        await out.push(reply(CARD, (Attachment(kind="file", url="https://f.example/a.pdf", name="a.pdf"),)),
                       uuid.uuid4())
    [sent] = fake.hook_sent
    assert sent["content"]["text"] == ('<at user_id="ou_alice"></at> 我可以发布。\n\n发布 1.4?\nRelease 1.4 is ready.\n'
                                       "1. Deploy (answer: deploy 1.4)\n2. Cancel (answer: cancel)\n\n"
                                       "a.pdf: https://f.example/a.pdf")


async def test_the_sdks_image_upload_is_accepted_by_the_fake(fake: FakeFeishu) -> None:
    from lark_oapi.api.im.v1 import CreateImageRequest, CreateImageRequestBody

    app = f"cli_{uuid.uuid4().hex[:8]}"  # the SDK caches tenant tokens per app id for the whole process
    fake.apps[app] = "sdk-secret"
    client = lark.Client.builder().app_id(app).app_secret("sdk-secret").domain(fake.url).build()
    body = CreateImageRequestBody.builder().image_type("message").image(io.BytesIO(png())).build()
    resp = await asyncio.to_thread(client.im.v1.image.create, CreateImageRequest.builder().request_body(body).build())
    assert resp.success(), (resp.code, resp.msg, fake.rejected)
    assert fake.images[resp.data.image_key] == png()
    bad = CreateImageRequestBody.builder().image_type("message").image(io.BytesIO(b"not an image")).build()
    refused = await asyncio.to_thread(client.im.v1.image.create, CreateImageRequest.builder().request_body(bad).build())
    assert refused.code == 234011


# ---------------------------------------------------------------- presses in


def press_event(**over: Any) -> dict[str, Any]:
    value = {"value": "deploy 1.4", "label": "Deploy", "chat_type": "group"}
    args: dict[str, Any] = {"token": TOKEN, "value": value, "open_message_id": "om_card_1", "open_chat_id": "oc_g1",
                            "operator": "ou_bob"}
    args.update(over)
    return card_action_event(**args)


def sdk_callback(body: bytes, headers: dict[str, str], seen: list[Any]) -> tuple[int, bytes]:
    """lark-oapi's dispatcher with a card action handler: its status and answer for this request."""
    handler = (lark.EventDispatcherHandler.builder(KEY, TOKEN)
               .register_p2_card_action_trigger(lambda data: seen.append(data) or P2Response({})).build())
    raw = RawRequest()
    raw.uri, raw.body = "/webhook/card", body
    canonical = {"x-lark-request-timestamp": "X-Lark-Request-Timestamp", "x-lark-request-nonce": "X-Lark-Request-Nonce",
                 "x-lark-signature": "X-Lark-Signature"}
    raw.headers = {canonical.get(k, k): v for k, v in headers.items()}
    resp = handler.do(raw)
    return resp.status_code, resp.content


from lark_oapi.event.callback.model.p2_card_action_trigger import (  # noqa: E402
    P2CardActionTriggerResponse as P2Response,
)


async def test_a_press_is_a_message_of_the_chat_as_the_sdk_reads_it() -> None:
    ev = press_event()
    body, headers = event_request(ev, encrypt_key=KEY)
    seen: list[Any] = []
    status, _ = sdk_callback(body, headers, seen)
    [sdk] = seen  # the SDK reads our callback: the same operator, value and context
    assert status == 200 and sdk.event.operator.open_id == "ou_bob" and sdk.event.action.value["value"] == "deploy 1.4"
    assert sdk.event.context.open_message_id == "om_card_1" and sdk.header.event_id == ev["header"]["event_id"]
    inbound = await receive(channel(), body, headers)
    msg = inbound.message
    assert msg is not None and inbound.dedupe_id == msg.platform_message_id == ev["header"]["event_id"]
    assert msg.text == "deploy 1.4" and msg.sender == Sender(id="ou_bob") and msg.chat == Chat(id="oc_g1", type="group")
    assert msg.action == Action(value="deploy 1.4", label="Deploy", card_message_id="om_card_1")
    assert msg.reply_route == {"chat_id": "oc_g1", "message_id": "om_card_1"} and msg.mentioned_bot
    answer = orjson.loads(inbound.answer.body)
    parsed = lark.JSON.unmarshal(inbound.answer.body.decode(), P2Response)  # a response the SDK's model reads
    assert answer == {"toast": {"type": "info", "content": "✓ Deploy"}} and parsed.toast.content == "✓ Deploy"


async def test_a_press_is_published_once_and_passes_the_group_mention_rule() -> None:
    dedupe, publisher = FakeDedupe(), FakePublisher()
    acceptor, ch = Acceptor(dedupe, publisher), channel(require_mention_in_groups=True)
    ev = press_event(value={"value": "cancel", "label": "Cancel", "chat_type": "group", "thread_id": "omt_9"})
    first = await acceptor.accept(ch, await receive(ch, *event_request(ev, encrypt_key=KEY)))
    again = await acceptor.accept(ch, await receive(ch, *event_request(ev, encrypt_key=KEY)))
    other = await acceptor.accept(ch, await receive(ch, *event_request(press_event(), encrypt_key=KEY)))
    assert (first.status, again.status, other.status) == ("published", "duplicate", "published")
    data = publisher.published[0].data
    assert data.text == "cancel" and data.action == Action(value="cancel", label="Cancel", card_message_id="om_card_1")
    assert data.reply_route["thread_id"] == "omt_9" and len(publisher.published) == 2


@pytest.mark.parametrize(("change", "status", "reason"), [
    ({"value": {"label": "x", "chat_type": "group"}}, 400, "action.value.value"),
    ({"value": {"value": "v" * 201, "chat_type": "group"}}, 400, "action.value.value"),
    ({"value": {"value": "ok", "label": "l" * 41, "chat_type": "group"}}, 400, "label"),
    ({"value": {"value": "ok"}}, 400, "chat_type"),
    ({"value": {"value": "ok", "chat_type": "group", "thread_id": "a b"}}, 400, "thread_id"),
    ({"open_message_id": ""}, 400, "open_message_id"),
    ({"open_chat_id": "oc bad"}, 400, "open_chat_id"),
    ({"operator": "ou bad"}, 400, "operator"),
    ({"token": "not-the-token"}, 401, "verification token"),
])
async def test_bad_presses_are_refused_with_a_reason(change: dict[str, Any], status: int, reason: str) -> None:
    with pytest.raises(Rejected) as err:
        await receive(channel(), *event_request(press_event(**change), encrypt_key=KEY))
    assert err.value.status == status and reason in str(err.value)


async def test_broken_callback_shapes_and_other_components() -> None:
    ev = press_event()
    ev["event"]["action"]["value"] = "a string"
    with pytest.raises(Rejected, match="action.value object"):
        await receive(channel(), *event_request(ev, encrypt_key=KEY))
    ev["event"] = []
    with pytest.raises(Rejected, match="event object"):
        await receive(channel(), *event_request(ev, encrypt_key=KEY))
    body, headers = event_request(press_event(), encrypt_key=KEY)
    with pytest.raises(Rejected) as err:  # a signed callback needs its signature
        await receive(channel(), body, {"content-type": headers["content-type"]})
    assert err.value.status == 401
    select = await receive(channel(), *event_request(press_event(tag="select_static"), encrypt_key=KEY))
    assert select.message is None and select.answer.body == b"{}" and "ignored" in select.note


# ---------------------------------------------------------------- presses over the long connection


@pytest.mark.parametrize("kind", ["event", "card"])
async def test_a_press_over_the_long_connection_is_answered_with_its_toast(kind: str) -> None:
    gateway = await FakeFeishuGateway({STREAM_APP: STREAM_SECRET}).start()
    deliver = Recorder()
    try:
        async with httpx.AsyncClient() as http:
            ch = stream_channel(gateway)
            conn = FeishuLongConnection(ch, FeishuInbound(ch), deliver, http, LinkState())
            task = asyncio.create_task(conn.run())
            await gateway.wait_connected()
            ev = press_event(token="unused")
            frame_id = await gateway.push(ev, kind=kind)
            [ack] = await gateway.wait_acks(1)
            task.cancel()
            await asyncio.wait({task}, timeout=30)
    finally:
        await gateway.stop()
    [got] = deliver.got
    assert got.message is not None and got.message.text == "deploy 1.4" and got.dedupe_id == ev["header"]["event_id"]
    assert ack.message_id == frame_id and ack.code == 200
    assert ack.data == {"toast": {"type": "info", "content": "✓ Deploy"}}


async def test_an_image_message_refused_for_good_does_not_fail_the_delivered_reply(fake: FakeFeishu,
                                                                                   images: str) -> None:
    async with httpx.AsyncClient() as http:
        fake.plan = [None, (400, 230001, "invalid request parameter", {})]
        pushed = await outbound(fake, http).push(reply(attachments=(
            Attachment(kind="image", url=images + "cat.png"),)), uuid.uuid4())
    [text] = fake.sent
    assert text["msg_type"] == "text" and pushed.platform_message_id == text["message_id"]


async def test_a_reply_of_images_only_goes_out_as_images(fake: FakeFeishu, images: str) -> None:
    only = reply(attachments=(Attachment(kind="image", url=images + "cat.png"),)).model_copy(update={"text": ""})
    async with httpx.AsyncClient() as http:
        pushed = await outbound(fake, http).push(only, uuid.uuid4())
    [image] = fake.sent
    assert image["msg_type"] == "image" and pushed.platform_message_id == image["message_id"]


async def test_a_reply_of_images_all_refused_is_not_reported_delivered(fake: FakeFeishu, images: str) -> None:
    only = reply(attachments=(Attachment(kind="image", url=images + "cat.png"),)).model_copy(update={"text": ""})
    async with httpx.AsyncClient() as http:
        fake.plan = [(400, 230001, "invalid request parameter", {})]
        with pytest.raises(Permanent, match="no message of the reply"):
            await outbound(fake, http).push(only, uuid.uuid4())
    assert not fake.sent


async def test_lark_oapis_own_client_answers_a_press_as_ours_does() -> None:
    """The SDK's ws client with a card action handler answers the press with ``data`` = base64 of the toast:
    the answer the fake reads, and the one ours is checked against above."""
    import threading

    import lark_oapi.ws.client as sdk_ws

    gateway = await FakeFeishuGateway({STREAM_APP: STREAM_SECRET}).start()
    seen: list[Any] = []

    def on_press(data: Any) -> P2Response:
        seen.append(data)
        return P2Response({"toast": {"type": "info", "content": "✓ Deploy"}})

    handler = lark.EventDispatcherHandler.builder("", "").register_p2_card_action_trigger(on_press).build()
    client = lark.ws.Client(STREAM_APP, STREAM_SECRET, event_handler=handler, domain=gateway.url,
                            auto_reconnect=False, log_level=lark.LogLevel.ERROR)
    sdk_loop = sdk_ws.loop

    def serve() -> None:
        try:
            client.start()
        except RuntimeError:  # the loop stopped: how the test ends it
            pass
        sdk_loop.run_until_complete(client._disconnect())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        await gateway.wait_connected()
        ev = press_event(token="unused")
        await gateway.push(ev)
        [ack] = await gateway.wait_acks(1)
    finally:
        sdk_loop.call_soon_threadsafe(sdk_loop.stop)
        await asyncio.to_thread(thread.join, 30)
        await gateway.stop()
    [sdk] = seen
    assert sdk.event.action.value == ev["event"]["action"]["value"] and sdk.event.operator.open_id == "ou_bob"
    assert ack.code == 200 and ack.data == {"toast": {"type": "info", "content": "✓ Deploy"}}
