"""Slack: Events API in (signed with slack_sdk's own SignatureVerifier), chat.postMessage out (a fake Slack)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from agentbus.channeltypes.slack import SlackChannel
from agentbus.events import Chat, ReplyGenerated, ReplyGeneratedData, Sender
from agentbus.services.egress.channels.base import TokenCache
from agentbus.services.egress.channels.slack import SlackOutbound
from agentbus.services.egress.channels.slack_mrkdwn import escape, to_mrkdwn
from agentbus.services.egress.handlers import Egress
from agentbus.services.egress.ports import Permanent, Retryable
from agentbus.services.ingress.channels.base import HttpRequest, Rejected
from agentbus.services.ingress.channels.slack import SlackInbound, signature
from agentbus.services.ingress.inbound import Inbound
from tests.fakes.doc_yaml import doc_config
from tests.fakes.slack import BOT_USER, FakeSlack, app_mention, event_callback, message, new_ts, signed
from tests.unit.fakes_egress import FakeDeliveryLedger, FakeRateLimiter

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"


def channel(**over: Any) -> SlackChannel:
    raw: dict[str, Any] = {
        "id": "sl", "type": "slack", "tenant": "acme", "agent": "assistant",
        "signing_secret": {"env": "SL_SECRET_UNSET", "default": SECRET},
        "bot_token": {"env": "SL_TOKEN_UNSET", "default": BOT_TOKEN},
    }
    raw.update(over)
    return SlackChannel.model_validate(raw)


async def receive(ch: SlackChannel, body: bytes, headers: dict[str, str], at: float | None = None) -> Inbound:
    req = HttpRequest("POST", "/v1/webhooks/sl", headers, {}, body, at if at is not None else time.time())
    return await SlackInbound(ch).receive(req)


async def status_of(ch: SlackChannel, body: bytes, headers: dict[str, str]) -> int:
    try:
        await receive(ch, body, headers)
    except Rejected as rej:
        return rej.status
    return 200


# ---------------------------------------------------------------- inbound


def test_signature_matches_slack_sdk_and_the_documented_example() -> None:
    # the worked example of Slack's "Verifying requests from Slack" guide
    body = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
            b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
            b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
            b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert signature(SECRET, "1531420618", body) == expected
    assert SignatureVerifier(SECRET).generate_signature(timestamp="1531420618", body=body) == expected


async def test_url_verification() -> None:
    body, headers = signed(SECRET, {"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                                    "type": "url_verification"})
    inbound = await receive(channel(), body, headers)
    assert inbound.message is None
    assert orjson.loads(inbound.answer.body) == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    # unsigned URL checks are refused like everything else
    assert await status_of(channel(), body, {"content-type": "application/json"}) == 401


async def test_direct_message_and_chinese_round_trip() -> None:
    text = "你好 &amp; 欢迎 &lt;测试&gt; 😀"
    ev = message(text)
    payload = event_callback(ev)
    inbound = await receive(channel(), *signed(SECRET, payload))
    m = inbound.message
    assert m is not None and m.chat.type == "direct" and m.mentioned_bot and not m.from_self
    assert m.text.encode() == "你好 & 欢迎 <测试> 😀".encode()
    assert m.sender.id == "U0ALICE001" and m.chat.id == "D0DIRECT01"
    assert inbound.dedupe_id == f"D0DIRECT01:{ev['ts']}" and m.platform_message_id == inbound.dedupe_id
    assert m.reply_route == {"channel": "D0DIRECT01", "ts": ev["ts"], "team": "T0TEAM0001"}


async def test_app_mention_and_channel_message_collapse_and_threads() -> None:
    ts = new_ts()
    text = f"<@{BOT_USER}> summarise <https://example.com|this page> for <@U0BOB00001|bob> in <#C0RANDOM01|random>"
    mention = await receive(channel(), *signed(SECRET, event_callback(app_mention(text, ts=ts))))
    same = await receive(channel(), *signed(SECRET, event_callback(
        message(text, channel="C0GENERAL1", channel_type="channel", ts=ts))))
    assert mention.message is not None and same.message is not None
    assert mention.dedupe_id == same.dedupe_id  # one message, two subscriptions: published once
    m = mention.message
    assert m.chat.type == "group" and m.mentioned_bot and same.message.mentioned_bot
    assert m.text == "summarise this page (https://example.com) for @bob in #random"
    assert m.mentions == (BOT_USER, "U0BOB00001")
    assert "thread_ts" not in m.reply_route
    # in a thread: answered in the thread; top level with reply_in_thread: a new thread under it
    parent = new_ts()
    mention = app_mention(f"<@{BOT_USER}> hi", thread_ts=parent)
    threaded = await receive(channel(), *signed(SECRET, event_callback(mention)))
    assert threaded.message is not None and threaded.message.reply_route["thread_ts"] == parent
    top = app_mention(f"<@{BOT_USER}> hi")
    started = await receive(channel(reply_in_thread=True), *signed(SECRET, event_callback(top)))
    assert started.message is not None and started.message.reply_route["thread_ts"] == top["ts"]
    # a channel message that does not mention the bot
    quiet = await receive(channel(), *signed(SECRET, event_callback(message("lunch?", channel="C0GENERAL1",
                                                                             channel_type="channel"))))
    assert quiet.message is not None and not quiet.message.mentioned_bot


async def test_bots_own_messages_and_edits_are_not_served() -> None:
    own = message("echo", user=BOT_USER, bot_id="B0BOT00001")
    m = (await receive(channel(), *signed(SECRET, event_callback(own)))).message
    assert m is not None and m.from_self
    other_bot = message("beep", subtype="bot_message", bot_id="B0OTHER001", user=None)
    assert (await receive(channel(), *signed(SECRET, event_callback(other_bot)))).message is None
    app_bot = message("beep", bot_id="B0OTHER001", user="U0OTHERBOT")
    assert (await receive(channel(), *signed(SECRET, event_callback(app_bot)))).message is None
    edited = message("x", subtype="message_changed")
    inbound = await receive(channel(), *signed(SECRET, event_callback(edited)))
    assert inbound.message is None and "message_changed" in inbound.note
    # with bot_user_id configured, an event without authorizations still recognises the bot
    payload = event_callback(message("echo", user="U0CONFIGBT", bot_id="B1"))
    del payload["authorizations"]
    m2 = (await receive(channel(bot_user_id="U0CONFIGBT"), *signed(SECRET, payload))).message
    assert m2 is not None and m2.from_self


async def test_tampered_stale_replayed_and_malformed_requests() -> None:
    ch = channel()
    payload = event_callback(message("hello"))
    body, headers = signed(SECRET, payload)
    assert await status_of(ch, body.replace(b"hello", b"hellO"), headers) == 401
    assert await status_of(ch, body, {**headers, "x-slack-signature": "v0=" + "0" * 64}) == 401
    assert await status_of(ch, body, {k: v for k, v in headers.items() if k != "x-slack-signature"}) == 401
    assert await status_of(ch, body, {**headers, "x-slack-request-timestamp": "abc"}) == 401
    stale_body, stale_headers = signed(SECRET, payload, timestamp=int(time.time()) - 301)
    with pytest.raises(Rejected, match="stale"):
        await receive(ch, stale_body, stale_headers)
    future_body, future_headers = signed(SECRET, payload, timestamp=int(time.time()) + 400)
    assert await status_of(ch, future_body, future_headers) == 401
    assert await status_of(ch, *signed("another-apps-secret", payload)) == 401
    # Slack's retries (X-Slack-Retry-Num) of the same event carry the same key: published once
    first = await receive(ch, body, headers)
    retry = await receive(ch, *signed(SECRET, payload, retry_num=1))
    assert first.dedupe_id == retry.dedupe_id is not None
    for junk in (b"", b"not json", b"[1]", orjson.dumps({"type": "event_callback"}),
                 orjson.dumps({"type": "event_callback", "event_id": "Ev1", "event": {"type": "message"}}),
                 orjson.dumps({"type": "event_callback", "event_id": "Ev1",
                               "event": {"type": "message", "channel": "../etc", "ts": "1.2", "user": "U1",
                                         "text": "x"}})):
        assert await status_of(ch, *signed(SECRET, junk)) == 400, junk
    other = await receive(ch, *signed(SECRET, event_callback({"type": "reaction_added", "user": "U1"})))
    assert other.message is None and "reaction_added" in other.note


@settings(max_examples=200, deadline=None)
@given(event=st.dictionaries(
    st.sampled_from(["type", "channel", "user", "text", "ts", "thread_ts", "subtype", "bot_id", "channel_type"]),
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=30),
              st.sampled_from(["message", "app_mention", "C0GENERAL1", "1700000000.000100", "im", BOT_USER]),
              st.lists(st.integers(-(2**40), 2**40), max_size=2)),
    max_size=9))
def test_any_event_is_an_inbound_or_a_4xx(event: dict[str, Any]) -> None:
    try:
        result = asyncio.run(receive(channel(), *signed(SECRET, event_callback(event))))
    except Rejected as rej:
        assert 400 <= rej.status < 500
    else:
        assert isinstance(result, Inbound)


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(["event_id", "team_id", "authorizations", "event", "type"]),
       value=st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=10), st.lists(st.integers(0, 3), max_size=2),
                       st.lists(st.fixed_dictionaries({"user_id": st.one_of(st.integers(0, 3), st.text(max_size=5)),
                                                       "is_bot": st.one_of(st.booleans(), st.none())}), max_size=2)))
def test_any_broken_envelope_is_an_inbound_or_a_4xx(key: str, value: Any) -> None:
    payload = event_callback(app_mention(f"<@{BOT_USER}> hi"))
    payload[key] = value
    try:
        result = asyncio.run(receive(channel(), *signed(SECRET, payload)))
    except Rejected as rej:
        assert 400 <= rej.status < 500
    else:
        assert isinstance(result, Inbound)


# ---------------------------------------------------------------- formatting


def test_escaping_and_markdown_to_mrkdwn() -> None:
    assert escape("a < b & c > d") == "a &lt; b &amp; c &gt; d"
    md = ("# 周报 Title\nSome **bold**, *italic*, ~~old~~ and `x<y && z`.\n"
          "- see [the docs](https://example.com/?a=1&b=2)\n> quoted <tag>\n```python\nif a < b: print('**')\n```\n"
          "2*3*4 = 24")
    assert to_mrkdwn(md) == (
        "*周报 Title*\nSome *bold*, _italic_, ~old~ and `x&lt;y &amp;&amp; z`.\n"
        "• see <https://example.com/?a=1&amp;b=2|the docs>\n> quoted &lt;tag&gt;\n```\nif a &lt; b: print('**')\n```\n"
        "2*3*4 = 24"
    )


# ---------------------------------------------------------------- outbound


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    f = await FakeSlack({BOT_TOKEN}, other_channels={"C0PRIVATE1"}).start()
    yield f
    await f.stop()


def reply(text: str = "你好 <world> & co", fmt: str = "text", route: dict[str, Any] | None = None,
          chat: str = "C0GENERAL1") -> ReplyGeneratedData:
    return ReplyGeneratedData(agent="assistant", channel="sl", channel_type="slack", chat=Chat(id=chat, type="group"),
                              text=text, format=fmt, model="echo",
                              reply_route={"channel": chat, "ts": "1700000000.000100"} if route is None else route)


def outbound(fake: FakeSlack, http: httpx.AsyncClient, **over: Any) -> SlackOutbound:
    return SlackOutbound(channel(api_base=fake.url, **over), http, TokenCache())


async def test_post_message_text_thread_and_markdown(fake: FakeSlack) -> None:
    async with httpx.AsyncClient() as http:
        out = outbound(fake, http)
        pushed = await out.push(reply(), uuid.uuid4())
        route = {"channel": "C0GENERAL1", "ts": "1.2", "thread_ts": "1700000000.000001"}
        await out.push(reply(route=route), uuid.uuid4())
        await out.push(reply("**done** see [x](https://e.com)", "markdown"), uuid.uuid4())
        await outbound(fake, http, markdown_as="markdown_text").push(reply("**done**", "markdown"), uuid.uuid4())
        await out.push(reply("scheduled", route={}, chat="D0DIRECT01"), uuid.uuid4())
    plain, threaded, mrkdwn, md_text, job = fake.posted
    assert plain["text"] == "你好 &lt;world&gt; &amp; co" and plain["mrkdwn"] is False and "thread_ts" not in plain
    assert pushed.platform_message_id == plain["ts"]
    assert threaded["thread_ts"] == "1700000000.000001"
    assert mrkdwn["text"] == "*done* see <https://e.com|x>" and mrkdwn["mrkdwn"] is True
    assert md_text["markdown_text"] == "**done**" and "text" not in md_text
    assert job["channel"] == "D0DIRECT01"
    assert not fake.unescaped
    assert not SlackOutbound.idempotent and SlackOutbound.default_rate_per_minute == 60


async def test_error_model(fake: FakeSlack) -> None:
    async with httpx.AsyncClient() as http:
        out = outbound(fake, http)
        fake.plan = [(429, "ratelimited", {"Retry-After": "3"})]
        with pytest.raises(Retryable) as r:
            await out.push(reply(), uuid.uuid4())
        assert r.value.retry_after == 3 and r.value.http_status == 429
        fake.plan = [(200, "internal_error", {})]
        with pytest.raises(Retryable):
            await out.push(reply(), uuid.uuid4())
        fake.plan = [(503, "service_unavailable", {})]
        with pytest.raises(Retryable):
            await out.push(reply(), uuid.uuid4())
        for chat, error in (("C0NOWHERE1", "channel_not_found"), ("C0PRIVATE1", "not_in_channel")):
            with pytest.raises(Permanent, match=error):
                await out.push(reply(chat=chat), uuid.uuid4())
        bad = SlackOutbound(channel(api_base=fake.url, bot_token={"env": "SL_X_UNSET", "default": "xoxb-bad"}),
                            http, TokenCache())
        with pytest.raises(Permanent, match="invalid_auth"):
            await bad.push(reply(), uuid.uuid4())
    assert not fake.posted


async def test_an_unreadable_200_is_ambiguous_and_never_posted_twice(fake: FakeSlack) -> None:
    # the message was posted but its answer cannot be read: repeating the push could post it twice
    async with httpx.AsyncClient() as http:
        out = outbound(fake, http)
        fake.unreadable = 1
        with pytest.raises(Retryable) as r:
            await out.push(reply(), uuid.uuid4())
        assert r.value.ambiguous and r.value.http_status == 200
        assert len(fake.posted) == 1
        fake.unreadable = 1
        egress = Egress({"sl": out}, FakeDeliveryLedger(), FakeRateLimiter(), attempts=6, backoff_initial_s=0.001)
        event = ReplyGenerated.new(reply("once"), source="reasoner", tenant="acme", conversation="acme/sl/C0GENERAL1")
        [done] = await egress.push_reply(event)
    assert done.data.status == "failed" and done.data.attempts == 1 and "not repeated" in (done.data.error or "")
    assert [m["text"] for m in fake.posted] == ["你好 &lt;world&gt; &amp; co", "once"]


async def test_slack_sdk_web_client_speaks_to_the_fake(fake: FakeSlack) -> None:
    client = WebClient(token=BOT_TOKEN, base_url=fake.url + "/")
    resp = await asyncio.to_thread(client.chat_postMessage, channel="C0GENERAL1", text="from slack_sdk",
                                   thread_ts="1700000000.000100")
    assert resp["ok"] and fake.posted[-1]["text"] == "from slack_sdk"
    with pytest.raises(Exception, match="channel_not_found"):
        await asyncio.to_thread(client.chat_postMessage, channel="C0NOWHERE1", text="x")


KEYS = ["ok", "error", "ts", "channel", "warning", "response_metadata"]

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
@given(answer=ANSWERS, fmt=st.sampled_from(["text", "markdown"]))
def test_any_platform_answer_is_pushed_retryable_or_permanent(
    answer: tuple[int, bytes, dict[str, str]], fmt: str
) -> None:
    status, body, headers = answer

    async def run() -> None:
        transport = httpx.MockTransport(lambda request: httpx.Response(status, content=body, headers=headers))
        async with httpx.AsyncClient(transport=transport) as http:
            try:
                await SlackOutbound(channel(), http, TokenCache()).push(reply("x", fmt), uuid.uuid4())
            except (Retryable, Permanent):
                pass

    asyncio.run(run())


def test_documented_example_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = doc_config("slack", monkeypatch)
    [ch] = [c for c in cfg.channels if c.type == "slack"]
    assert isinstance(ch, SlackChannel)
    SlackInbound(ch)
    SlackOutbound(ch, httpx.AsyncClient(), TokenCache())


async def test_channel_replies_mention_the_asker_unless_turned_off(fake: FakeSlack) -> None:
    asker = Sender(id="U0ALICE001")
    async with httpx.AsyncClient() as http:
        await outbound(fake, http).push(reply().model_copy(update={"asker": asker}), uuid.uuid4())
        await outbound(fake, http).push(reply("**好**", "markdown").model_copy(update={"asker": asker}),
                                        uuid.uuid4())
        await outbound(fake, http, markdown_as="markdown_text").push(
            reply("**好**", "markdown").model_copy(update={"asker": asker}), uuid.uuid4())
        await outbound(fake, http, mention_asker=False).push(reply().model_copy(update={"asker": asker}),
                                                             uuid.uuid4())
        await outbound(fake, http).push(reply(), uuid.uuid4())  # a job's push: no asker
    text, mrkdwn, md, off, job = fake.posted
    assert text["text"] == "<@U0ALICE001> 你好 &lt;world&gt; &amp; co" and text["mentions"] == ["U0ALICE001"]
    assert mrkdwn["text"] == "<@U0ALICE001> *好*" and md["markdown_text"] == "<@U0ALICE001> **好**"
    assert [m["mentions"] for m in (mrkdwn, md, off, job)] == [["U0ALICE001"], ["U0ALICE001"], [], []]
    assert not fake.unescaped
