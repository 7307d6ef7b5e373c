"""WeCom: callbacks encrypted and signed with wechatpy's enterprise crypto, pushes against a local fake."""

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

from agentbus.channeltypes.wecom import WeComChannel
from agentbus.config import parse_config
from agentbus.events import Chat, ReplyGeneratedData, Sender
from agentbus.services.egress.channels import ADAPTERS as OUT
from agentbus.services.egress.channels.base import TokenCache
from agentbus.services.egress.channels.wecom import WeComOutbound
from agentbus.services.egress.ports import Permanent, Retryable
from agentbus.services.ingress.accept import policy
from agentbus.services.ingress.channels import ADAPTERS as IN
from agentbus.services.ingress.channels.base import HttpRequest, Rejected
from agentbus.services.ingress.channels.wecom import WeComInbound
from tests.fakes.wecom import (
    BUSY,
    EXPIRED,
    FREQ,
    INVALID_TOKEN,
    NO_PRIVILEGE,
    FakeWeCom,
    callback_request,
    event_xml,
    text_message_xml,
    verify_url_query,
)

CORP, AGENT, SECRET = "wwcorp0001", 1000002, "app-secret-0001"
TOKEN, AES = "QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
ROBOT_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
HELLO = "你好，企业微信！请用中文回答 🙂"


def channel(**over: Any) -> WeComChannel:
    raw: dict[str, Any] = {
        "id": "wecom",
        "type": "wecom",
        "tenant": "acme",
        "agent": "assistant",
        "corp_id": CORP,
        "agent_id": AGENT,
        "secret": {"env": "T_WECOM_SECRET", "default": SECRET},
        "token": {"env": "T_WECOM_TOKEN", "default": TOKEN},
        "encoding_aes_key": {"env": "T_WECOM_AES", "default": AES},
        "group_robots": {"ops-room": {"env": "T_WECOM_ROBOT", "default": ROBOT_KEY}},
    }
    raw.update(over)
    return WeComChannel.model_validate(raw)


def request(method: str = "POST", body: bytes = b"", query: dict[str, str] | None = None) -> HttpRequest:
    return HttpRequest(
        method, "/v1/webhooks/wecom", {"content-type": "text/xml"}, query or {}, body, time.time()
    )


async def receive(req: HttpRequest, ch: WeComChannel | None = None) -> Any:
    return await WeComInbound(ch or channel()).receive(req)


async def rejected(req: HttpRequest, ch: WeComChannel | None = None) -> Rejected:
    with pytest.raises(Rejected) as err:
        await receive(req, ch)
    return err.value


# ---------------------------------------------------------------------- inbound


async def test_registered_and_accepts_get_for_the_verification() -> None:
    assert IN["wecom"] is WeComInbound and OUT["wecom"] is WeComOutbound
    inbound = WeComInbound(channel())
    assert (
        inbound.accepts_method("GET") and inbound.accepts_method("POST") and not inbound.accepts_method("PUT")
    )


async def test_url_verification_answers_the_decrypted_echostr() -> None:
    query = verify_url_query(TOKEN, AES, CORP, "1616140317555161061")
    inbound = await receive(request("GET", query=query))
    assert inbound.answer.body == b"1616140317555161061" and inbound.answer.content_type == "text/plain"
    assert inbound.message is None
    # '+' in an echostr that arrived without URL encoding reads as a space
    while "+" not in query["echostr"]:
        query = verify_url_query(TOKEN, AES, CORP, "1616140317555161061")
    spaced = {**query, "echostr": query["echostr"].replace("+", " ")}
    assert (await receive(request("GET", query=spaced))).answer.body == b"1616140317555161061"


async def test_text_message_with_chinese_round_trips() -> None:
    from wechatpy.enterprise import parse_message

    inner = text_message_xml(f" {HELLO} ", msg_id="1234567890123456")
    assert parse_message(inner).content == HELLO  # the reference parser reads our fixture (it strips, too)
    query, body = callback_request(TOKEN, AES, CORP, inner)
    inbound = await receive(request(body=body, query=query))
    m = inbound.message
    assert m.text == HELLO and m.text.encode() == HELLO.encode()
    assert inbound.dedupe_id == m.platform_message_id == "1234567890123456"
    assert (m.sender.id, m.chat.id, m.chat.type, m.mentioned_bot) == ("zhangsan", "zhangsan", "direct", True)
    assert m.reply_route == {"touser": "zhangsan", "agent_id": str(AGENT)}
    assert (inbound.answer.status, inbound.answer.body) == (200, b"")
    assert policy(channel(), m) == (None, None)
    assert policy(channel(allowlist=["lisi"]), m)[1] == channel().refusal_text


async def test_voice_recognition_is_read_events_acknowledged_and_images_carry_their_media() -> None:
    query, body = callback_request(TOKEN, AES, CORP, text_message_xml("语音内容", msg_type="voice"))
    voice = (await receive(request(body=body, query=query))).message
    assert voice is not None and voice.text == "语音内容"
    [audio] = voice.attachments
    assert (audio.kind, audio.source, audio.content_type, audio.transcript) == (
        "audio", {"media_id": "media"}, "audio/amr", "语音内容")
    query, body = callback_request(TOKEN, AES, CORP, event_xml("enter_agent"))
    ev = await receive(request(body=body, query=query))
    assert ev.message is None and "enter_agent" in ev.note and ev.answer.body == b""
    query, body = callback_request(TOKEN, AES, CORP, text_message_xml("https://wework.qpic.cn/x", msg_type="image",
                                                                      media_id="1abc"))
    image = (await receive(request(body=body, query=query))).message
    assert image is not None and image.text == "" and [(a.kind, a.source) for a in image.attachments] == [
        ("image", {"media_id": "1abc"})]
    query, body = callback_request(TOKEN, AES, CORP, text_message_xml("", msg_type="image", media_id=""))
    assert (await receive(request(body=body, query=query))).message is None  # nothing to fetch, nothing said


async def test_replayed_callback_has_the_same_dedupe_id() -> None:
    query, body = callback_request(TOKEN, AES, CORP, text_message_xml("再来一次", msg_id="777"))
    req = request(body=body, query=query)
    assert (await receive(req)).dedupe_id == (await receive(req)).dedupe_id == "777"


async def test_bad_callbacks_are_rejected() -> None:
    from agentbus.services.ingress.channels.callback_crypto import msg_signature

    inner = text_message_xml("hi")
    query, body = callback_request(TOKEN, AES, CORP, inner)
    enc = re.search(rb"<Encrypt><!\[CDATA\[(.*?)\]\]>", body).group(1).decode()  # type: ignore[union-attr]
    flipped = ("A" if enc[0] != "A" else "B") + enc[1:]
    stale_q, stale_b = callback_request(TOKEN, AES, CORP, inner, timestamp=int(time.time()) - 7200)
    other_q, other_b = callback_request(TOKEN, AES, "wwothercorp", inner)
    garbage = "bm90IGEgcmVhbCBjaXBoZXJ0ZXh0IGF0IGFsbCEhISEhISEhISEhISEhISEhISE="
    garbage_q = {**query, "msg_signature": msg_signature(TOKEN, query["timestamp"], query["nonce"], garbage)}
    other_agent_q, other_agent_b = callback_request(
        TOKEN, AES, CORP, text_message_xml("hi", agent_id=1000099)
    )
    no_id_q, no_id_b = callback_request(
        TOKEN, AES, CORP, "<xml><MsgType>text</MsgType><Content>x</Content></xml>"
    )
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Encrypt>&a;</Encrypt></xml>'
    cases = {
        "tampered ciphertext": (request(body=body.replace(enc.encode(), flipped.encode()), query=query), 401),
        "wrong signature": (request(body=body, query={**query, "msg_signature": "f" * 40}), 401),
        "missing signature": (request(body=body, query={"timestamp": query["timestamp"], "nonce": "n"}), 401),
        "stale": (request(body=stale_b, query=stale_q), 401),
        "other corp": (request(body=other_b, query=other_q), 400),
        "signed garbage": (
            request(body=f"<xml><Encrypt>{garbage}</Encrypt></xml>".encode(), query=garbage_q),
            400,
        ),
        "not xml": (request(body=b"{}", query=query), 400),
        "no encrypt": (request(body=b"<xml><ToUserName>x</ToUserName></xml>", query=query), 400),
        "entity declarations": (request(body=bomb, query=query), 400),
        "other agent": (request(body=other_agent_b, query=other_agent_q), 403),
        "no sender or id": (request(body=no_id_b, query=no_id_q), 422),
        "verification without echostr": (request("GET", query={k: v for k, v in query.items()}), 400),
        "verification with a bad signature": (
            request("GET", query={**verify_url_query(TOKEN, AES, CORP, "1"), "msg_signature": "0" * 40}),
            401,
        ),
    }
    for name, (req, status) in cases.items():
        assert (await rejected(req)).status == status, name
    robots_only = channel(secret=None, token=None, encoding_aes_key=None)
    assert (await rejected(request(body=body, query=query), robots_only)).status == 403


def test_config_rules() -> None:
    with pytest.raises(ValueError, match="go together"):
        channel(encoding_aes_key=None)
    with pytest.raises(ValueError, match="agent_id"):
        channel(agent_id=None)
    with pytest.raises(ValueError, match="group_robots"):
        channel(secret=None, group_robots={})
    with pytest.raises(ValueError, match="14400|less than"):
        channel(duplicate_check_interval_s=20000)


def test_documented_example_config_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = (Path(__file__).parents[3] / "docs" / "channels" / "wecom.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(.*?)```", doc, re.DOTALL)
    assert block is not None
    for name in re.findall(r"env: (\w+)", block.group(1)):
        monkeypatch.setenv(name, AES if "AES" in name else f"value-of-{name}")
    cfg = parse_config(yaml.safe_load(block.group(1)))
    [wecom] = [c for c in cfg.channels if c.type == "wecom"]
    assert isinstance(wecom, WeComChannel) and wecom.group_robots and wecom.agent_id


# ---------------------------------------------------------------------- outbound against the fake


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeCom]:
    f = await FakeWeCom(corp_id=CORP, secret=SECRET, agent_id=AGENT, robot_keys={ROBOT_KEY}).start()
    yield f
    await f.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as c:
        yield c


def adapter(fake: FakeWeCom, http: httpx.AsyncClient, **over: Any) -> WeComOutbound:
    return WeComOutbound(channel(api_base_url=fake.url, **over), http, TokenCache())


def reply(
    text: str = HELLO,
    chat: str = "zhangsan",
    kind: str = "direct",
    fmt: str = "text",
    route: dict[str, Any] | None = None,
) -> ReplyGeneratedData:
    return ReplyGeneratedData(
        agent="assistant",
        channel="wecom",
        channel_type="wecom",
        chat=Chat(id=chat, type=kind),
        text=text,
        format=fmt,
        model="echo",
        reply_route={"touser": chat} if route is None else route,
    )


async def test_app_message_text_and_markdown_with_one_cached_token(fake: FakeWeCom, http: Any) -> None:
    out = adapter(fake, http)
    pushed = await out.push(reply(), uuid.uuid4())
    await out.push(reply("**加粗** 与 `代码`", fmt="markdown"), uuid.uuid4())
    first, second = fake.sent
    assert (first["via"], first["users"], first["msgtype"], first["text"]) == (
        "app",
        ["zhangsan"],
        "text",
        HELLO,
    )
    assert HELLO.encode() in first["raw"] and pushed.platform_message_id == first["msgid"]
    assert (second["msgtype"], second["text"]) == ("markdown", "**加粗** 与 `代码`")
    assert fake.token_fetches == 1 and not fake.rejected
    assert not out.idempotent


async def test_token_refreshed_once_on_42001_and_40014(fake: FakeWeCom, http: Any) -> None:
    out = adapter(fake, http)
    await out.push(reply(), uuid.uuid4())
    fake.expire_tokens()  # the platform now answers 40014 for the cached token
    await out.push(reply(), uuid.uuid4())
    assert fake.token_fetches == 2 and fake.rejected == ["send: invalid token"]
    fake.fail_next(EXPIRED)
    await out.push(reply(), uuid.uuid4())
    assert fake.token_fetches == 3 and len(fake.sent) == 3
    fake.fail_next(INVALID_TOKEN, times=2)
    with pytest.raises(Retryable, match="right after a refresh"):
        await out.push(reply(), uuid.uuid4())


async def test_token_refreshed_before_expiry_and_once_under_concurrency(fake: FakeWeCom, http: Any) -> None:
    fake.token_ttl = 301
    out = adapter(fake, http)
    await asyncio.gather(*(out.push(reply(), uuid.uuid4()) for _ in range(8)))
    assert fake.token_fetches == 1
    await asyncio.sleep(1.1)
    await out.push(reply(), uuid.uuid4())
    assert fake.token_fetches == 2 and len(fake.sent) == 9


async def test_retry_classification_and_permanent_errors(fake: FakeWeCom, http: Any) -> None:
    out = adapter(fake, http)
    fake.fail_next(FREQ)
    with pytest.raises(Retryable, match="45009") as err:
        await out.push(reply(), uuid.uuid4())
    assert err.value.retry_after == 60.0
    fake.fail_next(BUSY)
    with pytest.raises(Retryable):
        await out.push(reply(), uuid.uuid4())
    fake.fail_next({"errmsg": "gateway"}, status=502)
    with pytest.raises(Retryable) as err:
        await out.push(reply(), uuid.uuid4())
    assert err.value.http_status == 502
    fake.fail_next({}, status=429)
    with pytest.raises(Retryable):
        await out.push(reply(), uuid.uuid4())
    fake.fail_next(NO_PRIVILEGE)
    with pytest.raises(Permanent, match="60011"):
        await out.push(reply(), uuid.uuid4())
    with pytest.raises(Permanent, match="81013"):
        await out.push(reply(chat="ghost"), uuid.uuid4())
    with pytest.raises(Permanent, match="no group robot"):
        await out.push(reply(chat="some-group", kind="group", route={}), uuid.uuid4())
    assert fake.sent == []


async def test_bad_secret_is_permanent(fake: FakeWeCom, http: Any) -> None:
    out = adapter(fake, http, secret={"env": "T_WECOM_WRONG", "default": "wrong"})
    with pytest.raises(Permanent, match="40001"):
        await out.push(reply(), uuid.uuid4())


async def test_group_robot_push_is_limited_to_20_a_minute(fake: FakeWeCom, http: Any) -> None:
    out = adapter(fake, http)
    job = reply("## 日报\n今日完成 3 项", chat="ops-room", kind="group", fmt="markdown", route={})
    assert out.rate_per_minute == 20 and out.target(job) == "wecom:robot:ops-room"
    for _ in range(20):
        await out.push(job, uuid.uuid4())
    with pytest.raises(Retryable, match="45009"):
        await out.push(job, uuid.uuid4())
    assert len(fake.sent) == 20 and fake.sent[0]["msgtype"] == "markdown" and fake.token_fetches == 0
    fake.robot_keys.clear()
    with pytest.raises(Permanent, match="93000"):
        await out.push(job, uuid.uuid4())


async def test_duplicate_check_makes_ambiguous_repeats_safe(fake: FakeWeCom, http: Any) -> None:
    out = adapter(fake, http, duplicate_check_interval_s=600, group_robots={})
    assert out.idempotent
    rid = uuid.uuid4()
    await out.push(reply("只发一次"), rid)
    await out.push(reply("只发一次"), rid)  # egress repeating an interrupted push
    assert len(fake.sent) == 1 and len(fake.suppressed) == 1
    assert b'"enable_duplicate_check":1' in fake.sent[0]["raw"]


async def test_long_text_is_split_at_character_boundaries(fake: FakeWeCom, http: Any) -> None:
    text = "长" * 1500  # 4500 bytes
    await adapter(fake, http).push(reply(text), uuid.uuid4())
    assert "".join(s["text"] for s in fake.sent) == text and len(fake.sent) == 3
    assert all(len(s["text"].encode()) <= 2048 for s in fake.sent)


async def test_unreachable_platform_is_retryable(http: Any) -> None:
    from agentbus.stack.procs import free_port

    out = WeComOutbound(channel(api_base_url=f"http://127.0.0.1:{free_port()}"), http, TokenCache())
    with pytest.raises(Retryable):
        await out.push(reply(), uuid.uuid4())


# ------------------------------------------------------------------ fuzzing: a 4xx or a result, never a crash

_xml_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="]<>&"), max_size=30
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fields=st.dictionaries(
        st.sampled_from(
            [
                "ToUserName",
                "FromUserName",
                "MsgType",
                "Content",
                "MsgId",
                "AgentID",
                "Event",
                "CreateTime",
                "Recognition",
            ]
        ),
        _xml_text,
        max_size=9,
    ),
    raw=st.binary(max_size=200),
    query=st.dictionaries(
        st.sampled_from(["msg_signature", "timestamp", "nonce", "echostr"]), st.text(max_size=40)
    ),
)
async def test_any_callback_is_an_inbound_or_a_4xx(
    fields: dict[str, str], raw: bytes, query: dict[str, str]
) -> None:
    inner = "<xml>" + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()) + "</xml>"
    signed_q, signed_b = callback_request(TOKEN, AES, CORP, inner)
    inbound = WeComInbound(channel())
    for req in (
        request(body=signed_b, query=signed_q),
        request(body=raw, query=query),
        request(body=raw, query=signed_q),
        request("GET", query=query),
    ):
        try:
            await inbound.receive(req)
        except Rejected as err:
            assert 400 <= err.status < 500


async def test_group_robot_replies_mention_the_asker_unless_turned_off(fake: FakeWeCom, http: Any) -> None:
    asker = Sender(id="lisi")
    text = reply("好的", chat="ops-room", kind="group", route={}).model_copy(update={"asker": asker})
    md = reply("**完成**", chat="ops-room", kind="group", fmt="markdown", route={}).model_copy(update={"asker": asker})
    await adapter(fake, http).push(text, uuid.uuid4())
    await adapter(fake, http).push(md, uuid.uuid4())
    await adapter(fake, http, mention_asker=False).push(text, uuid.uuid4())
    await adapter(fake, http).push(md.model_copy(update={"asker": None}), uuid.uuid4())  # a job's push
    t, m, off, job = fake.sent
    assert (t["text"], t["mentioned"], orjson.loads(t["raw"])["text"]["mentioned_list"]) == ("好的", ["lisi"], ["lisi"])
    assert (m["text"], m["mentioned"]) == ("<@lisi> **完成**", ["lisi"])
    assert "mentioned_list" not in orjson.loads(m["raw"])["markdown"]  # markdown has no list: the tag does it
    assert (off["mentioned"], job["mentioned"], job["text"]) == ([], [], "**完成**")
    assert not fake.rejected


async def test_chats_sharing_a_robot_key_share_its_rate_target(fake: FakeWeCom, http: Any) -> None:
    key = {"env": "T_WECOM_ROBOT", "default": ROBOT_KEY}
    out = adapter(fake, http, group_robots={"ops-room": key, "ops-room-2": key})
    assert out.target(reply(chat="ops-room-2", kind="group")) == "wecom:robot:ops-room"


async def test_the_fake_refuses_a_malformed_mentioned_list(fake: FakeWeCom, http: Any) -> None:
    for bad in ("lisi", [""], [7]):
        r = await http.post(f"{fake.url}/cgi-bin/webhook/send", params={"key": ROBOT_KEY},
                            json={"msgtype": "text", "text": {"content": "x", "mentioned_list": bad}})
        assert r.json()["errcode"] == 40058
    assert not fake.sent
