"""Feishu / Lark: event subscription in (checked against the official lark-oapi SDK), IM API and custom bot out."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import lark_oapi as lark
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lark_oapi.core.model import RawRequest
from lark_oapi.core.utils import AESCipher

from agentbus.channeltypes.feishu import FeishuChannel
from agentbus.events import Chat, ReplyGeneratedData, Sender
from agentbus.services.egress.channels.base import TokenCache
from agentbus.services.egress.channels.feishu import FeishuOutbound, hook_sign
from agentbus.services.egress.ports import Permanent, Retryable
from agentbus.services.ingress.accept import Acceptor
from agentbus.services.ingress.channels.base import HttpRequest, Rejected
from agentbus.services.ingress.channels.feishu import FeishuInbound
from agentbus.services.ingress.channels.feishu_crypto import decrypt
from agentbus.services.ingress.inbound import Inbound
from tests.fakes.doc_yaml import doc_config
from tests.fakes.feishu import FakeFeishu, encrypt, event_request, mention, message_event
from tests.unit.fakes_ingress import FakeDedupe, FakePublisher

TOKEN = "vt_verification_token_1"
KEY = "ek_encrypt_key_1"
BOT = "ou_bot_1"
APP_ID, APP_SECRET = "cli_a1b2c3", "app-secret-1"


def channel(**over: Any) -> FeishuChannel:
    raw: dict[str, Any] = {
        "id": "fs", "type": "feishu", "tenant": "acme", "agent": "assistant",
        "app_id": {"env": "FS_APP_ID_UNSET", "default": APP_ID},
        "app_secret": {"env": "FS_APP_SECRET_UNSET", "default": APP_SECRET},
        "verification_token": {"env": "FS_TOKEN_UNSET", "default": TOKEN},
        "encrypt_key": {"env": "FS_KEY_UNSET", "default": KEY},
        "bot_open_id": BOT,
    }
    raw.update(over)
    return FeishuChannel.model_validate({k: v for k, v in raw.items() if v is not None})


def req(body: bytes, headers: dict[str, str], at: float | None = None) -> HttpRequest:
    return HttpRequest("POST", "/v1/webhooks/fs", {k.lower(): v for k, v in headers.items()}, {}, body,
                       at if at is not None else time.time())


async def receive(ch: FeishuChannel, body: bytes, headers: dict[str, str], at: float | None = None) -> Inbound:
    return await FeishuInbound(ch).receive(req(body, headers, at))


def sdk_dispatch(body: bytes, headers: dict[str, str], seen: list[Any]) -> int:
    """Run the request through lark-oapi's own event dispatcher: 200 when it accepts it."""
    handler = (
        lark.EventDispatcherHandler.builder(KEY, TOKEN)
        .register_p2_im_message_receive_v1(lambda data: seen.append(data))
        .build()
    )
    raw = RawRequest()
    raw.uri = "/webhook/event"
    raw.body = body
    canonical = {"x-lark-request-timestamp": "X-Lark-Request-Timestamp", "x-lark-request-nonce": "X-Lark-Request-Nonce",
                 "x-lark-signature": "X-Lark-Signature", "content-type": "Content-Type"}
    raw.headers = {canonical.get(k, k): v for k, v in headers.items()}
    return handler.do(raw).status_code


# ---------------------------------------------------------------- crypto


def test_documented_decryption_vector_and_sdk_agreement() -> None:
    # the example in Feishu's "encrypt key" guide: key "test key" decrypts this to "hello world"
    assert decrypt("test key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=") == b"hello world"
    plain = "你好，世界 — 飞书 🚀".encode()
    token = encrypt(KEY, plain)
    assert AESCipher(KEY).decrypt_str(token).encode() == plain  # the SDK reads what the test helper writes
    assert decrypt(KEY, token) == plain


# ---------------------------------------------------------------- inbound


async def test_encrypted_signed_message_accepted_like_the_sdk_and_chinese_round_trips() -> None:
    text = "你好，机器人！请总结一下 “季度报告” 😀"
    ev = message_event(token=TOKEN, text=text, chat_type="p2p")
    body, headers = event_request(ev, encrypt_key=KEY)
    seen: list[Any] = []
    assert sdk_dispatch(body, headers, seen) == 200
    [sdk_event] = seen
    inbound = await receive(channel(), body, headers)
    m = inbound.message
    assert m is not None and inbound.dedupe_id == ev["header"]["event_id"] == sdk_event.header.event_id
    assert m.text.encode() == text.encode()
    assert m.platform_message_id == sdk_event.event.message.message_id
    assert m.chat.id == sdk_event.event.message.chat_id and m.chat.type == "direct"
    assert m.sender.id == sdk_event.event.sender.sender_id.open_id == "ou_alice"
    assert m.mentioned_bot and not m.from_self
    assert m.reply_route == {"chat_id": "oc_chat1", "message_id": m.platform_message_id}
    assert inbound.answer.status == 200


async def test_group_mentions_are_resolved_with_the_bots_open_id() -> None:
    ev = message_event(
        token=TOKEN, text="@_user_1 请问 @_user_2 的报告呢", chat_type="group", thread_id="omt_1",
        mentions=[mention("@_user_1", BOT, "助手", "bot"), mention("@_user_2", "ou_bob", "Bob")],
    )
    body, headers = event_request(ev, encrypt_key=KEY)
    seen: list[Any] = []
    assert sdk_dispatch(body, headers, seen) == 200
    assert [mm.key for mm in seen[0].event.message.mentions] == ["@_user_1", "@_user_2"]
    m = (await receive(channel(), body, headers)).message
    assert m is not None and m.chat.type == "group" and m.mentioned_bot
    assert m.text == "请问 @Bob 的报告呢"
    assert m.mentions == (BOT, "ou_bob")
    assert m.reply_route["thread_id"] == "omt_1"

    other = message_event(token=TOKEN, text="@_user_1 hi", chat_type="group",
                          mentions=[mention("@_user_1", "ou_bob", "Bob")])
    m2 = (await receive(channel(), *event_request(other, encrypt_key=KEY))).message
    assert m2 is not None and not m2.mentioned_bot and m2.text == "@Bob hi"


async def test_own_and_app_messages_are_not_served() -> None:
    own = message_event(token=TOKEN, text="echo", sender=BOT, sender_type="app")
    m = (await receive(channel(), *event_request(own, encrypt_key=KEY))).message
    assert m is not None and m.from_self
    other_app = message_event(token=TOKEN, text="hello", sender="ou_other_bot", sender_type="app")
    inbound = await receive(channel(), *event_request(other_app, encrypt_key=KEY))
    assert inbound.message is None and "app" in inbound.note


async def test_post_is_flattened_and_unsupported_types_are_acknowledged() -> None:
    post = {"title": "周报", "content": [[{"tag": "at", "user_id": "@_user_1", "user_name": "助手"},
                                         {"tag": "text", "text": " 第一行"}],
                                        [{"tag": "a", "text": "链接", "href": "https://example.com"}]]}
    ev = message_event(token=TOKEN, text="", message_type="post", content=orjson.dumps(post).decode(),
                       chat_type="group", mentions=[mention("@_user_1", BOT, "助手", "bot")])
    m = (await receive(channel(), *event_request(ev, encrypt_key=KEY))).message
    assert m is not None and m.text == "周报\n第一行\n链接" and m.mentioned_bot
    sticker = message_event(token=TOKEN, text="", message_type="sticker", content='{"file_key":"st_1"}')
    inbound = await receive(channel(), *event_request(sticker, encrypt_key=KEY))
    assert inbound.message is None and inbound.dedupe_id == sticker["header"]["event_id"]


async def test_url_verification_plain_and_encrypted() -> None:
    challenge = {"challenge": "ajls384kdjx98XX", "token": TOKEN, "type": "url_verification"}
    plain_ch = channel(encrypt_key=None)
    inbound = await receive(plain_ch, *event_request(challenge))
    assert inbound.message is None and orjson.loads(inbound.answer.body) == {"challenge": "ajls384kdjx98XX"}
    body, _ = event_request(challenge, encrypt_key=KEY)  # the URL check is encrypted, not signed
    inbound = await receive(channel(), body, {"content-type": "application/json"})
    assert orjson.loads(inbound.answer.body) == {"challenge": "ajls384kdjx98XX"}
    seen: list[Any] = []
    assert sdk_dispatch(body, {"content-type": "application/json"}, seen) == 200
    with pytest.raises(Rejected) as err:
        await receive(plain_ch, *event_request({**challenge, "token": "forged"}))
    assert err.value.status == 401


async def test_plain_events_are_checked_by_verification_token() -> None:
    ch = channel(encrypt_key=None)
    ev = message_event(token=TOKEN, text="hi")
    assert (await receive(ch, *event_request(ev))).message is not None
    with pytest.raises(Rejected) as err:
        await receive(ch, *event_request(message_event(token="wrong", text="hi")))
    assert err.value.status == 401
    with pytest.raises(Rejected):
        await receive(ch, *event_request({**ev, "header": {**ev["header"], "token": None}}))


async def test_tampered_stale_replayed_and_malformed_requests() -> None:
    ch = channel()
    ev = message_event(token=TOKEN, text="hello")
    body, headers = event_request(ev, encrypt_key=KEY)

    async def status(b: bytes, h: dict[str, str], at: float | None = None) -> int:
        try:
            await receive(ch, b, h, at)
        except Rejected as rej:
            return rej.status
        return 200

    sdk: list[Any] = []
    tampered = body.replace(b'"encrypt":"', b'"encrypt":"A', 1)
    assert sdk_dispatch(tampered, headers, sdk) == 500  # the SDK refuses it as well
    assert await status(tampered, headers) == 401
    assert await status(body, {**headers, "x-lark-signature": "0" * 64}) == 401
    assert await status(body, {k: v for k, v in headers.items() if k != "x-lark-signature"}) == 401
    old = int(time.time()) - 9 * 3600  # past Feishu's whole retry schedule (about 7.1 h)
    stale_body, stale_headers = event_request(ev, encrypt_key=KEY, timestamp=old)
    with pytest.raises(Rejected, match="stale"):
        await receive(ch, stale_body, stale_headers)
    future_body, future_headers = event_request(ev, encrypt_key=KEY, timestamp=int(time.time()) + 600)
    with pytest.raises(Rejected, match="future"):
        await receive(ch, future_body, future_headers)
    # a replay inside the window is the same platform event: same dedupe id, published once by ingress
    first = await receive(ch, body, headers)
    again = await receive(ch, body, headers)
    assert first.dedupe_id == again.dedupe_id == ev["header"]["event_id"]
    # signed with the right key but encrypted with another
    wrong = orjson.dumps({"encrypt": encrypt("another key", orjson.dumps(ev))})
    ts, nonce = headers["x-lark-request-timestamp"], headers["x-lark-request-nonce"]
    resigned = {**headers, "x-lark-signature": hashlib.sha256((ts + nonce + KEY).encode() + wrong).hexdigest()}
    assert await status(wrong, resigned) == 400
    for junk in (b"", b"not json", b"[]", b'{"encrypt": 5}', b'{"encrypt": "***"}'):
        sig = hashlib.sha256((ts + nonce + KEY).encode() + junk).hexdigest()
        assert await status(junk, {**headers, "x-lark-signature": sig}) == 400, junk
    # an event for another app's key never gets through
    other_body, other_headers = event_request(ev, encrypt_key="someone else's key")
    assert await status(other_body, other_headers) == 401


async def test_a_retry_stamped_hours_ago_is_accepted_once_and_its_signature_still_checked() -> None:
    """Feishu retries after 15 s, 5 min, 1 h and 6 h; a retry may keep its first attempt's signed timestamp."""
    ch = channel()
    acceptor = Acceptor(FakeDedupe(), publisher := FakePublisher())
    ev = message_event(token=TOKEN, text="重试的消息")
    first_attempt = int(time.time()) - int(6 * 3600 + 21 * 60 + 15)  # the last retry's distance from the first
    body, headers = event_request(ev, encrypt_key=KEY, timestamp=first_attempt)
    seen: list[Any] = []
    assert sdk_dispatch(body, headers, seen) == 200 and len(seen) == 1  # the SDK accepts it too
    retry = await receive(ch, body, headers)
    assert (await acceptor.accept(ch, retry)).status == "published"
    # the same request once more (a replay, or Feishu's next retry): the same event, not published again
    again = await receive(ch, body, headers)
    assert again.dedupe_id == retry.dedupe_id == ev["header"]["event_id"]
    assert (await acceptor.accept(ch, again)).status == "duplicate"
    assert len(publisher.published) == 1
    # an old stamp is no way around the signature
    forged = {**headers, "x-lark-signature": hashlib.sha256(b"forged").hexdigest()}
    with pytest.raises(Rejected, match="invalid X-Lark-Signature") as rej:
        await receive(ch, body, forged)
    assert rej.value.status == 401
    unsigned = {k: v for k, v in headers.items() if k != "x-lark-signature"}
    with pytest.raises(Rejected):
        await receive(ch, body, unsigned)
    # an operator can narrow the window again
    with pytest.raises(Rejected, match="stale"):
        await receive(channel(max_event_age_s=300), body, headers)
    assert len(publisher.published) == 1


async def test_other_events_and_schema_1_are_acknowledged_without_a_message() -> None:
    ev = message_event(token=TOKEN, text="x")
    ev["header"]["event_type"] = "im.chat.member.bot.added_v1"
    inbound = await receive(channel(), *event_request(ev, encrypt_key=KEY))
    assert inbound.message is None and inbound.answer.status == 200 and "ignored" in inbound.note
    v1 = {"uuid": "u1", "token": TOKEN, "ts": "1", "type": "event_callback", "event": {"type": "message"}}
    inbound = await receive(channel(), *event_request(v1, encrypt_key=KEY))
    assert inbound.message is None and "1.0" in inbound.note


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(
        ["schema", "header", "event", "token", "type", "challenge", "encrypt", "message", "sender", "content",
         "mentions", "key", "id", "open_id", "chat_id", "message_id", "message_type", "event_id"]), c, max_size=5),
    max_leaves=20)
FIELDS = ["schema", "header", "event", "event.sender", "event.message", "event.message.content",
          "event.message.mentions", "event.message.chat_type", "event.message.message_type", "header.event_id",
          "event.sender.sender_id", "event.message.chat_id", "event.message.message_id"]


def _outcome(ch: FeishuChannel, body: bytes) -> None:
    try:
        result = asyncio.run(receive(ch, body, {"content-type": "application/json"}))
    except Rejected as rej:
        assert 400 <= rej.status < 500
    else:
        assert isinstance(result, Inbound)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=300), JSON.map(orjson.dumps)))
def test_any_input_is_an_inbound_or_a_4xx(body: bytes) -> None:
    _outcome(channel(encrypt_key=None), body)


@settings(max_examples=200, deadline=None)
@given(path=st.sampled_from(FIELDS), value=JSON)
def test_any_broken_field_of_a_real_event_is_an_inbound_or_a_4xx(path: str, value: Any) -> None:
    ev = message_event(token=TOKEN, text="hi", chat_type="group", mentions=[mention("@_user_1", BOT, "bot", "bot")])
    *parents, last = path.split(".")
    node: Any = ev
    for p in parents:
        node = node[p]
    node[last] = value
    _outcome(channel(encrypt_key=None), orjson.dumps(ev))


# ---------------------------------------------------------------- outbound


@pytest.fixture
async def fake() -> AsyncIterator[FakeFeishu]:
    f = await FakeFeishu({APP_ID: APP_SECRET}, hooks={"hook-token-1": "hook-secret-1", "hook-open": None}).start()
    yield f
    await f.stop()


def reply(text: str = "你好！这是回复。", fmt: str = "text", route: dict[str, Any] | None = None,
          chat: str = "oc_chat1") -> ReplyGeneratedData:
    return ReplyGeneratedData(
        agent="assistant", channel="fs", channel_type="feishu", chat=Chat(id=chat, type="group"), text=text,
        format=fmt, model="echo", reply_route={"chat_id": chat, "message_id": "om_in_1"} if route is None else route,
    )


def outbound(
    fake: FakeFeishu, http: httpx.AsyncClient, tokens: TokenCache | None = None, **over: Any
) -> FeishuOutbound:
    return FeishuOutbound(channel(api_base=fake.url, **over), http, tokens or TokenCache())


async def test_reply_uses_reply_endpoint_uuid_and_one_cached_token(fake: FakeFeishu) -> None:
    async with httpx.AsyncClient() as http:
        out = outbound(fake, http)
        rid = uuid.uuid4()
        pushed = await out.push(reply(), rid)
        await out.push(reply("第二条"), uuid.uuid4())
    assert fake.token_fetches == 1
    first = fake.sent[0]
    assert first["reply_to"] == "om_in_1" and first["uuid"] == str(rid) and first["msg_type"] == "text"
    assert first["content_json"]["text"].encode() == "你好！这是回复。".encode()
    assert "reply_in_thread" not in first
    assert pushed.platform_message_id == first["message_id"] and not fake.rejected


async def test_ambiguous_repeat_is_deduplicated_by_uuid(fake: FakeFeishu) -> None:
    async with httpx.AsyncClient() as http:
        out = outbound(fake, http)
        rid = uuid.uuid4()
        a = await out.push(reply(), rid)
        b = await out.push(reply(), rid)
    assert FeishuOutbound.idempotent and a.platform_message_id == b.platform_message_id and len(fake.sent) == 1


async def test_token_refreshed_before_expiry_and_after_rejection(fake: FakeFeishu) -> None:
    fake.expire = 2
    async with httpx.AsyncClient() as http:
        out = outbound(fake, http, TokenCache(margin_s=1.0))
        await out.push(reply(), uuid.uuid4())
        await asyncio.sleep(1.1)  # inside the margin: refreshed before it expires
        await out.push(reply(), uuid.uuid4())
        assert fake.token_fetches == 2
        fake.expire = 7200
        fake.revoke_tokens()  # the platform no longer accepts the cached token: 99991663 → refresh once
        await out.push(reply(), uuid.uuid4())
        assert fake.token_fetches == 3 and len(fake.sent) == 3
        results = await asyncio.gather(*(out.push(reply(), uuid.uuid4()) for _ in range(5)))
        assert len(results) == 5 and fake.token_fetches == 3  # concurrent pushes share one token


async def test_retry_classification(fake: FakeFeishu) -> None:
    async with httpx.AsyncClient() as http:
        out = outbound(fake, http)
        fake.plan = [(429, 99991400, "request trigger frequency limit", {"x-ogw-ratelimit-reset": "7"})]
        with pytest.raises(Retryable) as r:
            await out.push(reply(), uuid.uuid4())
        assert r.value.retry_after == 7 and r.value.http_status == 429
        fake.plan = [(400, 99991400, "request trigger frequency limit", {"x-ogw-ratelimit-reset": "3"})]
        with pytest.raises(Retryable) as r:
            await out.push(reply(), uuid.uuid4())
        assert r.value.retry_after == 3
        fake.plan = [(500, 1000004, "internal error", {})]
        with pytest.raises(Retryable):
            await out.push(reply(), uuid.uuid4())
        fake.plan = [(400, 230002, "Bot/User can NOT be out of the chat.", {})]
        with pytest.raises(Permanent) as p:
            await out.push(reply(), uuid.uuid4())
        assert "230002" in str(p.value)
        assert not fake.sent


async def test_bad_app_credentials_are_permanent(fake: FakeFeishu) -> None:
    async with httpx.AsyncClient() as http:
        out = outbound(fake, http, app_secret={"env": "FS_BAD_UNSET", "default": "wrong"})
        with pytest.raises(Permanent, match="tenant_access_token"):
            await out.push(reply(), uuid.uuid4())


async def test_send_mode_recalled_target_and_threads(fake: FakeFeishu) -> None:
    async with httpx.AsyncClient() as http:
        await outbound(fake, http, reply_mode="send").push(reply(), uuid.uuid4())
        assert fake.sent[-1]["receive_id"] == "oc_chat1" and fake.sent[-1]["reply_to"] is None
        fake.recalled.add("om_gone")
        await outbound(fake, http).push(reply(route={"chat_id": "oc_chat1", "message_id": "om_gone"}), uuid.uuid4())
        assert fake.sent[-1]["receive_id"] == "oc_chat1"  # fell back to a new message
        await outbound(fake, http).push(reply(route={"chat_id": "oc_c", "message_id": "om_t", "thread_id": "omt"}),
                                        uuid.uuid4())
        assert fake.sent[-1]["reply_to"] == "om_t" and fake.sent[-1]["reply_in_thread"] is True
        await outbound(fake, http).push(reply(route={}, chat="oc_job_chat"), uuid.uuid4())  # a scheduled job
        assert fake.sent[-1]["receive_id"] == "oc_job_chat"


async def test_markdown_as_post_or_card(fake: FakeFeishu) -> None:
    md = "**加粗** 和 [链接](https://example.com)\n- 项目"
    async with httpx.AsyncClient() as http:
        await outbound(fake, http).push(reply(md, "markdown"), uuid.uuid4())
        await outbound(fake, http, markdown_as="interactive").push(reply(md, "markdown"), uuid.uuid4())
    post, card = fake.sent
    assert post["msg_type"] == "post"
    assert post["content_json"] == {"zh_cn": {"title": "", "content": [[{"tag": "md", "text": md}]]}}
    assert card["msg_type"] == "interactive"
    assert card["content_json"]["elements"][0] == {"tag": "markdown", "content": md}


async def test_custom_bot_webhook_signed_push(fake: FakeFeishu) -> None:
    hook = {"bot_webhook": {"token": {"env": "FS_HOOK_UNSET", "default": "hook-token-1"},
                            "secret": {"env": "FS_HOOK_SECRET_UNSET", "default": "hook-secret-1"}}}
    async with httpx.AsyncClient() as http:
        out = outbound(fake, http, app_id=None, app_secret=None, **hook)
        assert out.rate_for(reply(route={})) == 100 and not out.is_idempotent(reply(route={}))
        assert not fake.token_fetches
        await out.push(reply("定时提醒：开会", route={}), uuid.uuid4())
        sent = fake.hook_sent[-1]
        assert sent["content"] == {"text": "定时提醒：开会"}
        assert sent["sign"] == hook_sign(int(sent["timestamp"]), "hook-secret-1")
        await out.push(reply("**周报**", "markdown", route={}), uuid.uuid4())
        assert fake.hook_sent[-1]["content"]["post"]["zh_cn"]["content"][0][0]["tag"] == "md"
        bad = {"bot_webhook": {**hook["bot_webhook"], "secret": {"env": "FS_HOOK_SECRET_UNSET", "default": "nope"}}}
        with pytest.raises(Permanent, match="19021"):
            await outbound(fake, http, app_id=None, app_secret=None, **bad).push(reply(route={}), uuid.uuid4())
        # with app credentials too, a route asking for the custom bot goes there
        both = outbound(fake, http, **hook)
        await both.push(reply("via hook", route={"via": "bot_webhook"}), uuid.uuid4())
        assert fake.hook_sent[-1]["content"]["text"] == "via hook" and not fake.sent
        assert both.target(reply(route={"via": "bot_webhook"})) == "fs:bot_webhook"


KEYS = ["code", "msg", "data", "message_id", "StatusCode", "tenant_access_token", "expire"]

ANSWERS = st.tuples(
    st.sampled_from([200, 400, 401, 403, 404, 429, 500, 502]),
    st.one_of(st.binary(max_size=40), st.recursive(
        st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=12),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(KEYS), c, max_size=4),
        max_leaves=12).map(orjson.dumps)),
    st.dictionaries(st.sampled_from(["retry-after", "x-ogw-ratelimit-reset", "content-type"]),
                    st.sampled_from(["1", "abc", "-5", "application/json", ""]), max_size=2),
)


@settings(max_examples=100, deadline=None)
@given(answer=ANSWERS, fmt=st.sampled_from(["text", "markdown"]), hook=st.booleans())
def test_any_platform_answer_is_pushed_retryable_or_permanent(answer: tuple[int, bytes, dict[str, str]], fmt: str,
                                                              hook: bool) -> None:
    status, body, headers = answer

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("tenant_access_token/internal"):
            return httpx.Response(200, json={"code": 0, "tenant_access_token": "t-1", "expire": 7200})
        return httpx.Response(status, content=body, headers=headers)

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            over: dict[str, Any] = {"bot_webhook": {"token": {"env": "FS_H_UNSET", "default": "h"}}}
            if hook:
                over.update(app_id=None, app_secret=None)
            out = FeishuOutbound(channel(**over), http, TokenCache())
            try:
                await out.push(reply("x", fmt), uuid.uuid4())
            except (Retryable, Permanent):
                pass

    asyncio.run(run())


def test_hook_sign_matches_the_documented_algorithm() -> None:
    # the Python sample in Feishu's custom bot guide
    ts, secret = 1599360473, "demo-secret"
    string_to_sign = f"{ts}\n{secret}"
    expected = base64.b64encode(hmac.new(string_to_sign.encode("utf-8"), digestmod=hashlib.sha256).digest()).decode()
    assert hook_sign(ts, secret) == expected


def test_rate_defaults_idempotency_and_override() -> None:
    http = httpx.AsyncClient()
    hook = {"bot_webhook": {"token": {"env": "FS_HOOK_UNSET", "default": "h"}}}
    out = FeishuOutbound(channel(**hook), http, TokenCache())
    assert out.rate_for(reply()) == 300 and out.is_idempotent(reply())
    via_hook = reply(route={"via": "bot_webhook"})
    assert out.rate_for(via_hook) == 100 and not out.is_idempotent(via_hook)
    assert FeishuOutbound(channel(rate_limit_per_minute=30), http, TokenCache()).rate_for(reply()) == 30


def test_api_base_selects_feishu_or_lark() -> None:
    assert channel().base == "https://open.feishu.cn"
    assert channel(api_base="https://open.larksuite.com/").base == "https://open.larksuite.com"
    with pytest.raises(ValueError):
        channel(api_base="open.larksuite.com")
    with pytest.raises(ValueError):
        channel(app_id=None, app_secret=None)


async def test_official_sdk_client_speaks_to_the_fake(fake: FakeFeishu) -> None:
    """The fake is a faithful peer: lark-oapi's own client fetches a token and sends a message through it."""
    from lark_oapi.api.im.v1 import CreateMessageRequest, CreateMessageRequestBody

    client = lark.Client.builder().app_id(APP_ID).app_secret(APP_SECRET).domain(fake.url).build()
    request = (
        CreateMessageRequest.builder().receive_id_type("chat_id")
        .request_body(CreateMessageRequestBody.builder().receive_id("oc_sdk").msg_type("text")
                      .content(orjson.dumps({"text": "来自 SDK"}).decode()).uuid(str(uuid.uuid4())).build())
        .build()
    )
    resp = await asyncio.to_thread(client.im.v1.message.create, request)
    assert resp.success(), (resp.code, resp.msg)
    assert fake.sent[-1]["content_json"]["text"] == "来自 SDK" and fake.token_fetches == 1


def test_documented_example_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = doc_config("feishu", monkeypatch)
    [ch] = [c for c in cfg.channels if c.type == "feishu"]
    assert isinstance(ch, FeishuChannel) and ch.encrypt_key is not None
    FeishuInbound(ch)
    FeishuOutbound(ch, httpx.AsyncClient(), TokenCache())


async def test_group_replies_mention_the_asker_as_each_message_type_spells_it(fake: FakeFeishu) -> None:
    asker = Sender(id="ou_alice")
    hook = {"bot_webhook": {"token": {"env": "FS_HOOK_UNSET", "default": "hook-open"}}}
    async with httpx.AsyncClient() as http:
        out = outbound(fake, http)
        await out.push(reply("好的").model_copy(update={"asker": asker}), uuid.uuid4())
        await out.push(reply("**好**", "markdown").model_copy(update={"asker": asker}), uuid.uuid4())
        card = outbound(fake, http, markdown_as="interactive")
        await card.push(reply("**卡片**", "markdown").model_copy(update={"asker": asker}), uuid.uuid4())
        await outbound(fake, http, mention_asker=False).push(reply("关").model_copy(update={"asker": asker}),
                                                             uuid.uuid4())
        await out.push(reply("定时"), uuid.uuid4())  # a job's push: no asker
        await outbound(fake, http, app_id=None, app_secret=None, **hook).push(
            reply("群机器人", route={}).model_copy(update={"asker": asker}), uuid.uuid4())
    text, post, as_card, off, job = fake.sent
    assert text["content_json"] == {"text": '<at user_id="ou_alice"></at> 好的'} and text["mentions"] == ["ou_alice"]
    assert post["content_json"]["zh_cn"]["content"][0][0]["text"] == '<at user_id="ou_alice"></at> **好**'
    assert as_card["content_json"]["elements"][0]["content"] == "<at id=ou_alice></at> **卡片**"
    assert [m["mentions"] for m in (post, as_card, off, job)] == [["ou_alice"], ["ou_alice"], [], []]
    assert fake.hook_sent[-1]["content"] == {"text": '<at user_id="ou_alice"></at> 群机器人'}
    assert fake.hook_sent[-1]["mentions"] == ["ou_alice"] and not fake.rejected


async def test_the_fake_refuses_a_mention_spelled_for_another_type(fake: FakeFeishu) -> None:
    async with httpx.AsyncClient() as http:
        out = outbound(fake, http)
        wrong = reply().model_copy(update={"text": "<at id=ou_alice></at> card spelling in a text"})
        with pytest.raises(Permanent):
            await out.push(wrong, uuid.uuid4())
    assert not fake.sent and fake.rejected
