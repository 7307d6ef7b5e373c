"""DingTalk: inbound requests built with the official SDK's message model and the documented signatures
(encrypted callbacks with the dingtalk-sdk crypto), outbound pushes against a local fake of DingTalk."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentbus.channeltypes.dingtalk import DingTalkChannel
from agentbus.config import ConfigError, parse_config
from agentbus.events import Chat, ReplyGeneratedData, Sender
from agentbus.services.egress.channels import ADAPTERS as OUT
from agentbus.services.egress.channels.base import TokenCache
from agentbus.services.egress.channels.dingtalk import DingTalkOutbound, split_utf8
from agentbus.services.egress.ports import Permanent, Retryable
from agentbus.services.ingress.accept import policy
from agentbus.services.ingress.channels import ADAPTERS as IN
from agentbus.services.ingress.channels.base import HttpRequest, Rejected
from agentbus.services.ingress.channels.dingtalk import DingTalkInbound
from tests.fakes.dingtalk import (
    NO_PERMISSION,
    QPS_LIMIT,
    FakeDingTalk,
    encrypted_callback,
    open_success,
    robot_headers,
    robot_message,
)

APP_KEY, APP_SECRET = "dingappkey0001", "app-secret-0001"
CB_TOKEN, CB_AES = "callback-token", "o1w0aum42yaptlz8alnhwikjd3jenzt9cb9wmzptgus"
ROBOT_TOKEN, ROBOT_SECRET = "robot-access-token", "SECrobotsecret0001"
HELLO = "你好，机器人！请用中文回答 🙂"


def channel(**over: Any) -> DingTalkChannel:
    raw: dict[str, Any] = {
        "id": "ding",
        "type": "dingtalk",
        "tenant": "acme",
        "agent": "assistant",
        "app_key": {"env": "T_DING_KEY", "default": APP_KEY},
        "app_secret": {"env": "T_DING_SECRET", "default": APP_SECRET},
        "callback_token": {"env": "T_DING_CB_TOKEN", "default": CB_TOKEN},
        "callback_aes_key": {"env": "T_DING_CB_AES", "default": CB_AES},
        "custom_robots": {
            "ops-room": {
                "access_token": {"env": "T_DING_ROBOT", "default": ROBOT_TOKEN},
                "secret": {"env": "T_DING_ROBOT_SECRET", "default": ROBOT_SECRET},
            }
        },
        "oapi_base_url": "https://oapi.dingtalk.com",
    }
    raw.update(over)
    return DingTalkChannel.model_validate(raw)


def request(
    body: bytes,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    at: float | None = None,
) -> HttpRequest:
    return HttpRequest(
        "POST",
        "/v1/webhooks/ding",
        {k.lower(): v for k, v in (headers or {}).items()},
        query or {},
        body,
        at if at is not None else time.time(),
    )


async def receive(req: HttpRequest, ch: DingTalkChannel | None = None) -> Any:
    return await DingTalkInbound(ch or channel()).receive(req)


async def rejected(req: HttpRequest, ch: DingTalkChannel | None = None) -> Rejected:
    with pytest.raises(Rejected) as err:
        await receive(req, ch)
    return err.value


# ---------------------------------------------------------------------- inbound: robot messages


async def test_registered_under_one_type() -> None:
    assert IN["dingtalk"] is DingTalkInbound and OUT["dingtalk"] is DingTalkOutbound


async def test_direct_message_is_normalised_with_chinese_text_intact() -> None:
    session = "https://oapi.dingtalk.com/robot/sendBySession?session=abc"
    body = robot_message(f"  {HELLO} ", session_webhook=session, expires_ms=1_900_000_000_000, msg_id="msgA1")
    inbound = await receive(request(orjson.dumps(body), robot_headers(APP_SECRET)))
    m = inbound.message
    assert inbound.dedupe_id == "msgA1" and m.platform_message_id == "msgA1"
    assert m.text == HELLO and m.text.encode() == HELLO.encode()
    assert (m.sender.id, m.sender.name) == ("manager0001", "张三")
    assert (m.chat.id, m.chat.type) == ("cidDirect0001==", "direct")
    assert m.mentioned_bot and not m.from_self
    assert m.reply_route == {
        "conversation_type": "direct",
        "user_id": "manager0001",
        "robot_code": APP_KEY,
        "session_webhook": session,
        "session_webhook_expires_ms": 1_900_000_000_000,
    }
    assert inbound.answer.status == 200


async def test_group_messages_need_a_mention_and_own_messages_are_ignored() -> None:
    ch = channel()
    quiet = await receive(
        request(
            orjson.dumps(robot_message("大家好", group=True, conversation_id="cidGroup")),
            robot_headers(APP_SECRET),
        ),
        ch,
    )
    assert quiet.message.chat.type == "group" and not quiet.message.mentioned_bot
    assert policy(ch, quiet.message)[0] == "group message without a mention"
    assert policy(channel(require_mention_in_groups=False), quiet.message) == (None, None)

    asked = await receive(
        request(
            orjson.dumps(
                robot_message("@机器人 帮我查一下", group=True, in_at_list=True, conversation_id="cidGroup")
            ),
            robot_headers(APP_SECRET),
        ),
        ch,
    )
    assert asked.message.mentioned_bot and policy(ch, asked.message) == (None, None)
    assert asked.message.reply_route["open_conversation_id"] == "cidGroup"
    assert asked.message.chat.name == "机器人测试群"

    own = robot_message("我自己", sender_id="$:LWCP_v1:$bot0001")
    mine = await receive(request(orjson.dumps(own), robot_headers(APP_SECRET)), ch)
    assert mine.message.from_self and policy(ch, mine.message)[0] == "own message"


async def test_allowlist_refuses_other_direct_senders() -> None:
    ch = channel(allowlist=["boss001"])
    inbound = await receive(request(orjson.dumps(robot_message("hi")), robot_headers(APP_SECRET)), ch)
    assert policy(ch, inbound.message) == (None, ch.refusal_text)


async def test_rich_text_voice_and_pictures_are_read_other_types_are_not() -> None:
    rich = robot_message("", msgtype="richText")
    rich["content"] = {"richText": [{"text": "第一段"}, {"type": "picture", "downloadCode": "x"}, {"text": "第二段"}]}
    got = (await receive(request(orjson.dumps(rich), robot_headers(APP_SECRET)))).message
    assert got.text == "第一段第二段"
    assert [(a.kind, a.source["download_code"]) for a in got.attachments] == [("image", "x")]
    voice = robot_message("", msgtype="audio")
    voice["content"] = {"duration": 3, "downloadCode": "d", "recognition": "语音转文字"}
    heard = (await receive(request(orjson.dumps(voice), robot_headers(APP_SECRET)))).message
    assert heard.text == "语音转文字"
    assert [(a.kind, a.transcript) for a in heard.attachments] == [("audio", "语音转文字")]
    picture = robot_message("", msgtype="picture")
    picture["content"] = {"downloadCode": "pic-code", "pictureDownloadCode": "other"}
    seen = (await receive(request(orjson.dumps(picture), robot_headers(APP_SECRET)))).message
    assert seen.text == "" and [(a.kind, a.source["download_code"], a.source["robot_code"])
                                for a in seen.attachments] == [("image", "pic-code", "dingappkey0001")]
    document = robot_message("", msgtype="file")
    document["content"] = {"downloadCode": "f1", "fileName": "报告.pdf"}
    [doc] = (await receive(request(orjson.dumps(document), robot_headers(APP_SECRET)))).message.attachments
    assert (doc.kind, doc.name) == ("file", "报告.pdf")
    card = robot_message("", msgtype="interactiveCard")
    card["content"] = {}
    ignored = await receive(request(orjson.dumps(card), robot_headers(APP_SECRET)))
    assert ignored.message is None and "interactiveCard" in ignored.note and ignored.answer.status == 200


async def test_foreign_session_webhook_is_not_kept() -> None:
    body = robot_message(
        "hi",
        session_webhook="https://evil.example/robot/sendBySession?session=x",
        expires_ms=1_900_000_000_000,
    )
    inbound = await receive(request(orjson.dumps(body), robot_headers(APP_SECRET)))
    assert "session_webhook" not in inbound.message.reply_route


async def test_replayed_request_carries_the_same_dedupe_id() -> None:
    req = request(orjson.dumps(robot_message("again", msg_id="msgReplay")), robot_headers(APP_SECRET))
    assert (await receive(req)).dedupe_id == (await receive(req)).dedupe_id == "msgReplay"


async def test_bad_robot_requests_are_rejected() -> None:
    body = orjson.dumps(robot_message("hi"))
    good = robot_headers(APP_SECRET)
    now_ms = int(time.time() * 1000)
    cases = {
        "no headers": (request(body), 401, "missing"),
        "tampered sign": (
            request(body, {**good, "sign": good["sign"][:-4] + "AAA="}),
            401,
            "invalid signature",
        ),
        "other secret": (request(body, robot_headers("not-the-secret")), 401, "invalid signature"),
        "stale": (request(body, robot_headers(APP_SECRET, now_ms - 3601_000)), 401, "stale"),
        "future": (request(body, robot_headers(APP_SECRET, now_ms + 3601_000)), 401, "stale"),
        "sign for another timestamp": (
            request(body, {**good, "timestamp": str(now_ms - 5000)}),
            401,
            "invalid",
        ),
        "malformed timestamp": (request(body, {**good, "timestamp": "12ab"}), 401, "malformed"),
        "not json": (request(b"{nope", good), 400, "malformed JSON"),
        "not an object": (request(b"[1]", good), 400, "JSON object"),
        "wrong shape": (request(orjson.dumps({"msgId": "x"}), good), 422, "invalid robot message"),
        "bad conversation type": (
            request(orjson.dumps({**robot_message("x"), "conversationType": "9"}), good),
            422,
            "conversationType",
        ),
    }
    for name, (req, status, words) in cases.items():
        err = await rejected(req)
        assert err.status == status, name
        assert words in err.reason, (name, err.reason)
    # a channel that only has custom robots takes no robot messages
    robots_only = channel(app_key=None, app_secret=None, callback_owner_key="dingcorp")
    assert (await rejected(request(body, good), robots_only)).status == 403


async def test_window_is_one_hour_by_default() -> None:
    now_ms = int(time.time() * 1000)
    ok = await receive(
        request(orjson.dumps(robot_message("hi")), robot_headers(APP_SECRET, now_ms - 3500_000))
    )
    assert ok.message is not None


# ---------------------------------------------------------------------- inbound: encrypted callbacks


async def test_check_url_handshake_answers_encrypted_success() -> None:
    query, body = encrypted_callback(CB_TOKEN, CB_AES, APP_KEY, {"EventType": "check_url"})
    inbound = await receive(request(body, query=query))
    assert inbound.message is None and inbound.note == "check_url handshake"
    assert open_success(CB_TOKEN, CB_AES, APP_KEY, inbound.answer.body) == "success"


async def test_other_events_are_acknowledged_without_a_message() -> None:
    query, body = encrypted_callback(
        CB_TOKEN, CB_AES, APP_KEY, {"EventType": "user_add_org", "UserId": ["u1"]}
    )
    inbound = await receive(request(body, query=query))
    assert inbound.message is None and "user_add_org" in inbound.note
    assert open_success(CB_TOKEN, CB_AES, APP_KEY, inbound.answer.body) == "success"


async def test_encrypted_robot_message_with_chinese_round_trips() -> None:
    query, body = encrypted_callback(CB_TOKEN, CB_AES, APP_KEY, robot_message(HELLO, msg_id="msgEnc"))
    query = {"signature": query["msg_signature"], "timeStamp": query["timestamp"], "nonce": query["nonce"]}
    inbound = await receive(request(body, query=query))
    assert inbound.message.text == HELLO and inbound.dedupe_id == "msgEnc"
    assert open_success(CB_TOKEN, CB_AES, APP_KEY, inbound.answer.body) == "success"


async def test_bad_encrypted_callbacks_are_rejected() -> None:
    from agentbus.services.ingress.channels.callback_crypto import msg_signature

    payload = {"EventType": "check_url"}
    query, body = encrypted_callback(CB_TOKEN, CB_AES, APP_KEY, payload)
    enc = orjson.loads(body)["encrypt"]
    tampered = orjson.dumps({"encrypt": ("A" if enc[0] != "A" else "B") + enc[1:]})
    stale_q, stale_b = encrypted_callback(
        CB_TOKEN, CB_AES, APP_KEY, payload, int(time.time() * 1000) - 7200_000
    )
    other_q, other_b = encrypted_callback(CB_TOKEN, CB_AES, "another-app", payload)
    garbage = "bm90IGEgcmVhbCBjaXBoZXJ0ZXh0IGF0IGFsbCEhISEhISEhISEhISEhISEhISE="
    garbage_q = {
        **query,
        "msg_signature": msg_signature(CB_TOKEN, query["timestamp"], query["nonce"], garbage),
    }
    cases = {
        "tampered ciphertext": (request(tampered, query=query), 401),
        "wrong signature": (request(body, query={**query, "msg_signature": "0" * 40}), 401),
        "missing nonce": (request(body, query={k: v for k, v in query.items() if k != "nonce"}), 401),
        "stale": (request(stale_b, query=stale_q), 401),
        "other receive id": (request(other_b, query=other_q), 400),
        "signed garbage": (request(orjson.dumps({"encrypt": garbage}), query=garbage_q), 400),
        "encrypt not a string": (request(b'{"encrypt": 5}', query=query), 400),
    }
    for name, (req, status) in cases.items():
        assert (await rejected(req)).status == status, name
    no_crypto = channel(callback_token=None, callback_aes_key=None)
    assert (await rejected(request(body, query=query), no_crypto)).status == 403


# ---------------------------------------------------------------------- config and docs


def test_config_rules() -> None:
    with pytest.raises(ValueError, match="go together"):
        channel(app_secret=None)
    with pytest.raises(ValueError, match="go together"):
        channel(callback_aes_key=None)
    with pytest.raises(ValueError, match="custom_robots"):
        channel(app_key=None, app_secret=None, custom_robots={}, callback_token=None, callback_aes_key=None)
    with pytest.raises(ValueError):
        channel(oapi_base_url="ftp://x")


def test_documented_example_config_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = (Path(__file__).parents[3] / "docs" / "channels" / "dingtalk.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(.*?)```", doc, re.DOTALL)
    assert block is not None
    for name in re.findall(r"env: (\w+)", block.group(1)):
        monkeypatch.setenv(name, CB_AES if "AES" in name else f"value-of-{name}")
    cfg = parse_config(yaml.safe_load(block.group(1)))
    ding = [c for c in cfg.channels if c.type == "dingtalk"]
    assert ding and isinstance(ding[0], DingTalkChannel) and ding[0].custom_robots
    bad = yaml.safe_load(block.group(1))
    bad["channels"][0]["surprise"] = 1
    with pytest.raises(ConfigError, match="surprise"):
        parse_config(bad)


# ---------------------------------------------------------------------- outbound against the fake


@pytest.fixture
async def fake() -> AsyncIterator[FakeDingTalk]:
    f = await FakeDingTalk(app_key=APP_KEY, app_secret=APP_SECRET, robots={ROBOT_TOKEN: ROBOT_SECRET}).start()
    yield f
    await f.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as c:
        yield c


def adapter(
    fake: FakeDingTalk, http: httpx.AsyncClient, tokens: TokenCache | None = None, **over: Any
) -> DingTalkOutbound:
    ch = channel(api_base_url=fake.url, oapi_base_url=fake.url, **over)
    return DingTalkOutbound(ch, http, tokens or TokenCache())


def reply(
    text: str = HELLO,
    chat: str = "cidDirect0001==",
    kind: str = "direct",
    fmt: str = "text",
    route: dict[str, Any] | None = None,
) -> ReplyGeneratedData:
    return ReplyGeneratedData(
        agent="assistant",
        channel="ding",
        channel_type="dingtalk",
        chat=Chat(id=chat, type=kind),
        text=text,
        format=fmt,
        model="echo",
        reply_route=route or {},
    )


def direct_route(fake: FakeDingTalk | None = None, expired: bool = False) -> dict[str, Any]:
    route: dict[str, Any] = {"conversation_type": "direct", "user_id": "manager0001", "robot_code": APP_KEY}
    if fake is not None:
        url, expires = fake.new_session(-10 if expired else 5400)
        route.update(session_webhook=url, session_webhook_expires_ms=expires)
    return route


async def test_session_webhook_text_is_byte_exact_and_needs_no_token(fake: FakeDingTalk, http: Any) -> None:
    out = adapter(fake, http)
    pushed = await out.push(reply(route=direct_route(fake)), uuid.uuid4())
    [sent] = fake.sent
    assert sent["via"] == "session" and sent["msgtype"] == "text" and sent["text"] == HELLO
    assert HELLO.encode() in sent["raw"] and pushed.http_status == 200
    assert fake.token_fetches == 0


async def test_session_webhook_markdown(fake: FakeDingTalk, http: Any) -> None:
    text = "## 今日摘要\n\n- **一**：完成\n- 二"
    await adapter(fake, http).push(reply(text, fmt="markdown", route=direct_route(fake)), uuid.uuid4())
    [sent] = fake.sent
    assert (sent["msgtype"], sent["title"], sent["text"]) == ("markdown", "今日摘要", text)


async def test_expired_session_falls_back_to_the_openapi_with_one_cached_token(
    fake: FakeDingTalk, http: Any
) -> None:
    out = adapter(fake, http)
    for _ in range(3):
        pushed = await out.push(reply(route=direct_route(fake, expired=True)), uuid.uuid4())
    assert [s["via"] for s in fake.sent] == ["oto"] * 3
    assert fake.sent[0]["users"] == ["manager0001"] and fake.sent[0]["text"] == HELLO
    assert pushed.platform_message_id == fake.sent[-1]["key"]
    assert fake.token_fetches == 1


async def test_refused_session_falls_back_to_the_openapi(fake: FakeDingTalk, http: Any) -> None:
    route = direct_route(fake)
    route["session_webhook"] = f"{fake.url}/robot/sendBySession?session=revoked"
    await adapter(fake, http).push(reply(route=route), uuid.uuid4())
    assert [s["via"] for s in fake.sent] == ["oto"] and fake.rejected == ["session: unknown or expired"]


async def test_group_reply_and_markdown_through_the_openapi(fake: FakeDingTalk, http: Any) -> None:
    route = {"conversation_type": "group", "open_conversation_id": "cidGroup==", "robot_code": APP_KEY}
    await adapter(fake, http).push(
        reply("**粗体** 回复", chat="cidGroup==", kind="group", fmt="markdown", route=route), uuid.uuid4()
    )
    [sent] = fake.sent
    assert (sent["via"], sent["conversation"], sent["msgtype"], sent["text"]) == (
        "group",
        "cidGroup==",
        "markdown",
        "**粗体** 回复",
    )


async def test_scheduled_job_without_route_addresses_chat_id(fake: FakeDingTalk, http: Any) -> None:
    out = adapter(fake, http)
    await out.push(reply("早上好", chat="staff007"), uuid.uuid4())
    await out.push(reply("群公告", chat="cidTeam==", kind="group"), uuid.uuid4())
    assert [(s["via"], s.get("users"), s.get("conversation")) for s in fake.sent] == [
        ("oto", ["staff007"], None),
        ("group", None, "cidTeam=="),
    ]


async def test_token_refreshed_once_when_the_platform_says_it_is_invalid(
    fake: FakeDingTalk, http: Any
) -> None:
    out = adapter(fake, http)
    await out.push(reply(route=direct_route()), uuid.uuid4())
    fake.expire_tokens()
    await out.push(reply(route=direct_route()), uuid.uuid4())
    assert fake.token_fetches == 2 and len(fake.sent) == 2
    assert fake.rejected == ["openapi: invalid token"]


async def test_token_refreshed_before_expiry_and_fetched_once_under_concurrency(
    fake: FakeDingTalk, http: Any
) -> None:
    fake.token_ttl = 301  # the cache refreshes 300 s early, so this token is good for one second
    out = adapter(fake, http)
    await asyncio.gather(*(out.push(reply(route=direct_route()), uuid.uuid4()) for _ in range(8)))
    assert fake.token_fetches == 1 and len(fake.sent) == 8
    await asyncio.sleep(1.1)
    await out.push(reply(route=direct_route()), uuid.uuid4())
    assert fake.token_fetches == 2 and not fake.rejected


async def test_bad_credentials_are_permanent(fake: FakeDingTalk, http: Any) -> None:
    out = adapter(fake, http, app_secret={"env": "T_DING_WRONG", "default": "wrong"})
    with pytest.raises(Permanent, match="access token refused"):
        await out.push(reply(route=direct_route()), uuid.uuid4())


async def test_retry_classification(fake: FakeDingTalk, http: Any) -> None:
    out = adapter(fake, http)
    fake.fail_next(429, {"code": "Throttling", "message": "slow down"}, {"Retry-After": "7"})
    with pytest.raises(Retryable) as err:
        await out.push(reply(route=direct_route()), uuid.uuid4())
    assert err.value.retry_after == 7 and err.value.http_status == 429 and not err.value.ambiguous
    fake.fail_next(503, {"code": "ServiceUnavailable"})
    with pytest.raises(Retryable) as err:
        await out.push(reply(route=direct_route()), uuid.uuid4())
    assert err.value.http_status == 503
    fake.fail_next(403, QPS_LIMIT)
    with pytest.raises(Retryable) as err:
        await out.push(reply(route=direct_route()), uuid.uuid4())
    assert err.value.retry_after == 1.0
    fake.fail_next(403, NO_PERMISSION)
    with pytest.raises(Permanent, match="AccessTokenPermissionDenied"):
        await out.push(reply(route=direct_route()), uuid.uuid4())
    fake.fail_next(200, {"errcode": -1, "errmsg": "系统繁忙"})
    with pytest.raises(Retryable):
        await out.push(reply(route=direct_route(fake)), uuid.uuid4())
    fake.invalid_users.add("ghost")
    with pytest.raises(Permanent, match="invalid staff id"):
        await out.push(reply(route={**direct_route(), "user_id": "ghost"}), uuid.uuid4())
    assert fake.sent == []


async def test_unreachable_platform_is_retryable_and_not_ambiguous(http: Any) -> None:
    from agentbus.stack.procs import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    out = DingTalkOutbound(channel(api_base_url=dead, oapi_base_url=dead), http, TokenCache())
    with pytest.raises(Retryable) as err:
        await out.push(reply(route=direct_route()), uuid.uuid4())
    assert not err.value.ambiguous


async def test_custom_robot_push_is_signed_and_limited_to_20_a_minute(fake: FakeDingTalk, http: Any) -> None:
    out = adapter(fake, http)
    assert out.default_rate_per_minute == 20 and out.rate_per_minute == 20
    job = reply("每日站会提醒", chat="ops-room", kind="group")
    assert out.target(job) == "ding:robot:ops-room" and out.target(reply()) == "ding:cidDirect0001=="
    for _ in range(20):
        await out.push(job, uuid.uuid4())
    with pytest.raises(Retryable, match="130101") as err:
        await out.push(job, uuid.uuid4())
    assert err.value.retry_after == 60.0
    assert len(fake.sent) == 20 and {s["via"] for s in fake.sent} == {"robot"}
    assert fake.sent[0]["text"] == "每日站会提醒" and not fake.rejected and fake.token_fetches == 0
    assert adapter(fake, http, rate_limit_per_minute=5).rate_per_minute == 5


async def test_custom_robot_with_the_wrong_secret_is_permanent(fake: FakeDingTalk, http: Any) -> None:
    robots = {
        "ops-room": {
            "access_token": {"env": "T_DING_ROBOT", "default": ROBOT_TOKEN},
            "secret": {"env": "T_DING_ROBOT_SECRET2", "default": "SECwrong"},
        }
    }
    with pytest.raises(Permanent, match="310000"):
        await adapter(fake, http, custom_robots=robots).push(
            reply("x", chat="ops-room", kind="group"), uuid.uuid4()
        )


async def test_long_replies_are_split_and_a_retry_resumes_after_the_last_part(
    fake: FakeDingTalk, http: Any
) -> None:
    text = "\n".join(f"第{i}行：" + "汉字" * 300 for i in range(40))  # about 73 KB of UTF-8
    parts = split_utf8(text, 20000)
    assert len(parts) == 4 and "".join(parts) == text and all(len(p.encode()) <= 20000 for p in parts)
    out = adapter(fake, http)
    rid = uuid.uuid4()
    route = direct_route(fake)
    fake.fail_next(502, {"errmsg": "bad gateway"}, after=1)
    with pytest.raises(Retryable):
        await out.push(reply(text, route=route), rid)
    assert len(fake.sent) == 1
    await out.push(reply(text, route=route), rid)
    assert "".join(s["text"] for s in fake.sent) == text and len(fake.sent) == 4


# ------------------------------------------------------------------ fuzzing: a 4xx or a result, never a crash

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
_fields = st.fixed_dictionaries(
    {},
    optional={
        k: _json
        for k in (
            "msgId",
            "msgtype",
            "conversationId",
            "conversationType",
            "senderId",
            "text",
            "content",
            "atUsers",
            "sessionWebhook",
            "sessionWebhookExpiredTime",
            "isInAtList",
            "chatbotUserId",
            "encrypt",
            "EventType",
        )
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=_fields,
    stamp=st.text(max_size=20),
    sign=st.text(max_size=50),
    query=st.dictionaries(
        st.sampled_from(["msg_signature", "signature", "timestamp", "timeStamp", "nonce"]),
        st.text(max_size=30),
    ),
)
async def test_any_request_is_an_inbound_or_a_4xx(
    body: dict[str, Any], stamp: str, sign: str, query: dict[str, str]
) -> None:
    adapter_in = DingTalkInbound(channel())
    signed = robot_headers(APP_SECRET)
    for headers in (signed, {"timestamp": stamp, "sign": sign}):
        try:
            await adapter_in.receive(request(orjson.dumps(body), headers, query))
        except Rejected as err:
            assert 400 <= err.status < 500


async def test_a_session_webhook_elsewhere_than_dingtalk_is_never_called(
    fake: FakeDingTalk, http: Any
) -> None:
    route = {**direct_route(fake), "session_webhook": "http://127.0.0.1:9/robot/sendBySession?session=x"}
    await adapter(fake, http).push(reply(route=route), uuid.uuid4())
    assert [s["via"] for s in fake.sent] == ["oto"]


async def test_group_replies_at_mention_the_asker_unless_turned_off(fake: FakeDingTalk, http: Any) -> None:
    asker = Sender(id="manager0001", name="张三")
    group_route = {"conversation_type": "group", "user_id": "manager0001", "robot_code": APP_KEY}
    answer = reply("收到，马上处理", chat="ops-room", kind="group", route=group_route).model_copy(
        update={"asker": asker})
    await adapter(fake, http).push(answer, uuid.uuid4())
    url, expires = fake.new_session()
    session = {**group_route, "session_webhook": url, "session_webhook_expires_ms": expires}
    md = reply("## 结果\n完成", chat="cidGroup02==", kind="group", fmt="markdown", route=session)
    await adapter(fake, http).push(md.model_copy(update={"asker": asker}), uuid.uuid4())
    await adapter(fake, http, mention_asker=False).push(answer, uuid.uuid4())
    await adapter(fake, http).push(answer.model_copy(update={"asker": None}), uuid.uuid4())  # a job: nobody
    robot, session_md, off, job = fake.sent
    assert (robot["via"], robot["text"], robot["at_user_ids"], robot["shown"]) == (
        "robot", "@manager0001 收到，马上处理", ["manager0001"], ["manager0001"])
    assert orjson.loads(robot["raw"])["at"] == {"atUserIds": ["manager0001"], "isAtAll": False}
    assert session_md["via"] == "session" and session_md["title"] == "结果"
    assert session_md["text"] == "@manager0001\n\n## 结果\n完成" and session_md["shown"] == ["manager0001"]
    for unmentioned in (off, job):
        assert unmentioned["text"] == "收到，马上处理" and unmentioned["at_user_ids"] == []
    # direct chats and the OpenAPI (its templates have no mention field) address nobody
    await adapter(fake, http).push(reply(route=direct_route(fake)).model_copy(update={"asker": asker}), uuid.uuid4())
    assert fake.sent[-1]["text"] == HELLO and fake.sent[-1]["at_user_ids"] == []
    assert not fake.rejected


async def test_chats_served_by_one_custom_robot_share_its_rate_target(fake: FakeDingTalk, http: Any) -> None:
    same = {"access_token": {"env": "T_DING_ROBOT", "default": ROBOT_TOKEN}}
    out = adapter(fake, http, custom_robots={"room-a": same, "room-b": same,
                                             "room-c": {"access_token": {"env": "T_UNSET", "default": "other"}}})
    targets = {c: out.target(reply(chat=c, kind="group")) for c in ("room-a", "room-b", "room-c")}
    assert targets == {"room-a": "ding:robot:room-a", "room-b": "ding:robot:room-a", "room-c": "ding:robot:room-c"}


async def test_the_fake_refuses_a_malformed_at(fake: FakeDingTalk, http: Any) -> None:
    url, _ = fake.new_session()
    for at in ({"atUserIds": "manager0001"}, {"atUserIds": [1]}, {"isAtAll": "no"}, []):
        r = await http.post(url, content=orjson.dumps({"msgtype": "text", "text": {"content": "x"}, "at": at}))
        assert r.json()["errcode"] == 40035
    assert not fake.sent and len(fake.rejected) == 4
