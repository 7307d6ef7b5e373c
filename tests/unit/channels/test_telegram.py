"""Telegram: webhook updates in (checked against python-telegram-bot's parsing), sendMessage out (a fake Bot API)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import telegram
from hypothesis import given, settings
from hypothesis import strategies as st
from telegram.helpers import escape_markdown

from agentbus.channeltypes.telegram import TelegramChannel
from agentbus.events import Chat, ReplyGeneratedData, Sender
from agentbus.services.egress.channels.base import TokenCache
from agentbus.services.egress.channels.telegram import TelegramOutbound, split_text
from agentbus.services.egress.channels.telegram_markdown import escape, escape_code, escape_url, to_markdown_v2
from agentbus.services.egress.ports import Permanent, Retryable
from agentbus.services.ingress.channels.base import HttpRequest, Rejected
from agentbus.services.ingress.channels.telegram import TelegramInbound
from agentbus.services.ingress.inbound import Inbound
from tests.fakes.doc_yaml import doc_config
from tests.fakes.telegram import (
    BOT_ID,
    BOT_TOKEN,
    BOT_USERNAME,
    FakeTelegram,
    ParseError,
    chat,
    mention_entities,
    parse_markdown_v2,
    update,
    user,
)

SECRET = "tg-Secret_token-0123456789"


def channel(**over: Any) -> TelegramChannel:
    raw: dict[str, Any] = {
        "id": "tg", "type": "telegram", "tenant": "acme", "agent": "assistant",
        "bot_token": {"env": "TG_TOKEN_UNSET", "default": BOT_TOKEN},
        "secret_token": {"env": "TG_SECRET_UNSET", "default": SECRET},
        "bot_username": BOT_USERNAME,
    }
    raw.update(over)
    return TelegramChannel.model_validate(raw)


async def receive(ch: TelegramChannel, upd: dict[str, Any] | bytes, secret: str | None = SECRET) -> Inbound:
    body = upd if isinstance(upd, bytes) else orjson.dumps(upd)
    headers = {"content-type": "application/json"}
    if secret is not None:
        headers["x-telegram-bot-api-secret-token"] = secret
    return await TelegramInbound(ch).receive(HttpRequest("POST", "/v1/webhooks/tg", headers, {}, body, time.time()))


def ptb(upd: dict[str, Any]) -> telegram.Update:
    parsed = telegram.Update.de_json(upd, None)
    assert parsed is not None
    return parsed


# ---------------------------------------------------------------- inbound


async def test_private_message_and_chinese_round_trip() -> None:
    text = "你好，机器人！帮我写一首诗 🌸"
    upd = update(text)
    m = (await receive(channel(), upd)).message
    p = ptb(upd).effective_message
    assert m is not None and p is not None
    assert m.text.encode() == text.encode() == p.text.encode()
    assert m.chat.type == "direct" and m.chat.id == str(p.chat.id) and m.mentioned_bot and not m.from_self
    assert m.sender.id == str(p.from_user.id) and m.sender.name == "alice"
    assert m.reply_route == {"chat_id": 42, "message_id": p.message_id}
    assert m.platform_message_id == f"42:{p.message_id}"


async def test_group_mention_entity_with_utf16_offsets_matches_ptb() -> None:
    text = f"🌸🌸 嗨 @{BOT_USERNAME} 请问 @bob 在吗？"
    upd = update(text, chat_=chat(-100123, "supergroup"), entities=mention_entities(text, BOT_USERNAME, "bob"))
    inbound = await receive(channel(), upd)
    m = inbound.message
    assert m is not None and m.chat.type == "group" and m.mentioned_bot and m.chat.name == "Team chat"
    ptb_mentions = [v.lstrip("@") for v in ptb(upd).effective_message.parse_entities(["mention"]).values()]
    assert list(m.mentions) == ptb_mentions == [BOT_USERNAME, "bob"]
    assert m.text == "🌸🌸 嗨 请问 @bob 在吗？"
    assert inbound.dedupe_id == str(upd["update_id"])
    # not addressed: someone else mentioned, a plain message, a command for another bot
    for other in (update("hi @bob", chat_=chat(-100123, "supergroup"), entities=mention_entities("hi @bob", "bob")),
                  update("just talking", chat_=chat(-100123, "supergroup")),
                  update("/help@other_bot", chat_=chat(-555, "group"),
                         entities=[{"type": "bot_command", "offset": 0, "length": 15}])):
        mo = (await receive(channel(), other)).message
        assert mo is not None and not mo.mentioned_bot


async def test_reply_to_bot_text_mention_and_command_address_the_bot() -> None:
    group = chat(-100123, "supergroup")
    bot_msg = {"message_id": 5, "from": user(BOT_ID, "Agentbus", BOT_USERNAME, True), "chat": group, "date": 1,
               "text": "hi"}
    reply = update("and what about tomorrow?", chat_=group, reply_to_message=bot_msg)
    assert ptb(reply).effective_message.reply_to_message.from_user.id == BOT_ID
    m = (await receive(channel(), reply)).message
    assert m is not None and m.mentioned_bot
    m_off = (await receive(channel(reply_to_bot_is_mention=False), reply)).message
    assert m_off is not None and not m_off.mentioned_bot
    tm = update("Agentbus, summarise", chat_=group,
                entities=[{"type": "text_mention", "offset": 0, "length": 8,
                           "user": user(BOT_ID, "Agentbus", None, True)}])
    m2 = (await receive(channel(), tm)).message
    assert m2 is not None and m2.mentioned_bot and m2.text == ", summarise"
    cmd = update(f"/summary@{BOT_USERNAME} today", chat_=group,
                 entities=[{"type": "bot_command", "offset": 0, "length": len(f"/summary@{BOT_USERNAME}")}])
    m3 = (await receive(channel(), cmd)).message
    assert m3 is not None and m3.mentioned_bot


async def test_edited_own_and_other_updates() -> None:
    edited = update("fixed typo", edited=True)
    assert ptb(edited).edited_message is not None
    ignored = await receive(channel(), edited)  # the default: an edit gets no second answer
    assert ignored.message is None and ignored.answer.status == 200 and ignored.dedupe_id == str(edited["update_id"])
    assert "edit" in ignored.note
    m = (await receive(channel(edits="answer"), edited)).message
    assert m is not None and ":edited:" in m.platform_message_id and m.text == "fixed typo"
    own = update("echo", from_=user(BOT_ID, "Agentbus", BOT_USERNAME, True))
    m2 = (await receive(channel(), own)).message
    assert m2 is not None and m2.from_self
    for upd in ({"update_id": 10,
                 "channel_post": {"message_id": 1, "chat": chat(-1001, "channel"), "date": 1, "text": "x"}},
                update(None, sticker={"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1,
                                      "is_animated": False, "is_video": False, "type": "regular"}),
                update("x", chat_=chat(-1001, "channel"))):
        inbound = await receive(channel(), upd)
        assert inbound.message is None and inbound.answer.status == 200 and inbound.dedupe_id == str(upd["update_id"])
    captioned = update(None, caption=f"@{BOT_USERNAME} what is this?", chat_=chat(-555, "group"),
                       caption_entities=mention_entities(f"@{BOT_USERNAME} what is this?", BOT_USERNAME))
    m3 = (await receive(channel(), captioned)).message
    assert m3 is not None and m3.mentioned_bot and m3.text == "what is this?"


def test_secret_token_is_required_in_webhook_mode_only() -> None:
    with pytest.raises(ValueError, match="secret_token is required"):
        channel(secret_token=None)
    polled = channel(secret_token=None, mode="stream")
    assert polled.mode == "stream" and polled.secret_token is None


async def test_a_polling_channel_refuses_webhooks() -> None:
    with pytest.raises(Rejected) as err:
        await receive(channel(secret_token=None, mode="stream"), update("hi"), secret="anything")
    assert err.value.status == 401


async def test_secret_token_and_malformed_updates() -> None:
    upd = update("hi")
    for secret in (None, "", "wrong", SECRET + "x", SECRET[:-1]):
        with pytest.raises(Rejected) as err:
            await receive(channel(), upd, secret)
        assert err.value.status == 401
    # a replayed update is the same update_id: ingress publishes it once
    a, b = await receive(channel(), upd), await receive(channel(), upd)
    assert a.dedupe_id == b.dedupe_id
    for junk in (b"", b"nope", b"[]", b'{"message": {}}', b'{"update_id": "1"}', b'{"update_id": -1}',
                 b'{"update_id": 1, "message": []}', b'{"update_id": 1, "message": {"chat": {"type": "private"}}}'):
        with pytest.raises(Rejected) as err:
            await receive(channel(), junk)
        assert 400 <= err.value.status < 500, junk


@settings(max_examples=200, deadline=None)
@given(msg=st.dictionaries(
    st.sampled_from(["message_id", "chat", "from", "text", "entities", "caption", "reply_to_message",
                     "is_topic_message", "message_thread_id"]),
    st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.text(max_size=20),
              st.fixed_dictionaries({"id": st.integers(-5, 5), "type": st.sampled_from(["private", "group", "x"])}),
              st.lists(st.fixed_dictionaries({"type": st.sampled_from(["mention", "text_mention", "bot_command"]),
                                              "offset": st.integers(-3, 30), "length": st.integers(-3, 30)}),
                       max_size=3)),
    max_size=9))
def test_any_update_is_an_inbound_or_a_4xx(msg: dict[str, Any]) -> None:
    try:
        result = asyncio.run(receive(channel(), {"update_id": 1, "message": msg}))
    except Rejected as rej:
        assert 400 <= rej.status < 500
    else:
        assert isinstance(result, Inbound)


@settings(max_examples=200, deadline=None)
@given(path=st.sampled_from(["from", "from.id", "chat", "chat.id", "chat.type", "chat.title", "text", "entities",
                             "reply_to_message", "reply_to_message.from", "message_id", "edit_date",
                             "message_thread_id", "is_topic_message", "caption_entities"]),
       value=st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.text(max_size=10),
                       st.lists(st.integers(0, 3), max_size=2), st.dictionaries(st.sampled_from(["id", "type"]),
                                                                                st.integers(-3, 3), max_size=2)))
def test_any_broken_field_of_a_real_update_is_an_inbound_or_a_4xx(path: str, value: Any) -> None:
    text = f"@{BOT_USERNAME} hi"
    upd = update(text, chat_=chat(-555, "group"), entities=mention_entities(text, BOT_USERNAME),
                 reply_to_message={"message_id": 1, "from": user(BOT_ID), "chat": chat(-555, "group"), "date": 1})
    *parents, last = path.split(".")
    node: Any = upd["message"]
    for p in parents:
        node = node[p]
    node[last] = value
    try:
        result = asyncio.run(receive(channel(), upd))
    except Rejected as rej:
        assert 400 <= rej.status < 500
    else:
        assert isinstance(result, Inbound)


# ---------------------------------------------------------------- MarkdownV2


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("\\_*[]()~`>#+-=|{}.!abc 中文😀\n")), max_size=60))
def test_escaping_matches_python_telegram_bot(text: str) -> None:
    assert escape(text) == escape_markdown(text, version=2)
    assert escape_code(text) == escape_markdown(text, version=2, entity_type="code")
    assert escape_url(text) == escape_markdown(text, version=2, entity_type="text_link")
    assert parse_markdown_v2(escape(text))[0] == text  # and the API reads it back as the same plain text


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(list("\\_*[]()~`>#+-=|{}.!ab 中😀\n") + [
    "**", "***", "__", "~~", "```", "```py\n", "`x`", "[a](b)", "[x](http://a_(b))", "# ", "- ", "> "]),
    max_size=60).map("".join))
def test_any_markdown_converts_to_markup_the_api_accepts(md: str) -> None:
    parse_markdown_v2(to_markdown_v2(md))  # raises ParseError where Telegram would answer "can't parse entities"


def test_markdown_conversion() -> None:
    md = ("# 周报 v1.0!\n**粗体** and *italic* and ~~old~~, `a_b*c` and [docs (v2)](https://e.com/a_(b)?x=1)\n"
          "- item 1+1=2\n```python\nprint('`x`')\n```\n2*3*4 = 24 snake_case")
    out = to_markdown_v2(md)
    plain, entities = parse_markdown_v2(out)
    assert plain == ("周报 v1.0!\n粗体 and italic and old, a_b*c and docs (v2)\n• item 1+1=2\nprint('`x`')\n\n"
                     "2*3*4 = 24 snake_case")
    kinds = {(e["type"], plain[e["offset"]:e["offset"] + e["length"]]) for e in entities if e["type"] != "pre"}
    assert kinds == {("bold", "周报 v1.0!"), ("bold", "粗体"), ("italic", "italic"), ("strikethrough", "old"),
                     ("code", "a_b*c"), ("text_link", "docs (v2)")}
    assert [e["url"] for e in entities if e["type"] == "text_link"] == ["https://e.com/a_(b)?x=1"]
    with pytest.raises(ParseError):
        parse_markdown_v2("1.5")  # the fake refuses what Telegram refuses


def test_split_text_respects_the_limit_in_utf16_units() -> None:
    text = ("😀" * 3000) + "\n" + ("字 " * 3000)
    parts = split_text(text)
    assert "".join(parts) == text and all(len(p.encode("utf-16-le")) // 2 <= 4096 for p in parts)


# ---------------------------------------------------------------- outbound


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    f = await FakeTelegram(blocked={777}, chats={42: "private", -100123: "supergroup", -555: "group", 777: "private"},
                           migrated={-556: -100556}).start()
    f.chats[-100556] = "supergroup"
    f.remember(42, 10)
    yield f
    await f.stop()


def reply(text: str = "你好！ 1+1=2.", fmt: str = "text", chat_id: int = 42, message_id: int | None = 10,
          kind: str = "direct", **route: Any) -> ReplyGeneratedData:
    r: dict[str, Any] = {"chat_id": chat_id, **route}
    if message_id is not None:
        r["message_id"] = message_id
    return ReplyGeneratedData(agent="assistant", channel="tg", channel_type="telegram",
                              chat=Chat(id=str(chat_id), type=kind), text=text, format=fmt, model="echo",
                              reply_route=r)


def outbound(fake: FakeTelegram, http: httpx.AsyncClient, **over: Any) -> TelegramOutbound:
    return TelegramOutbound(channel(api_base=fake.url, **over), http, TokenCache())


async def test_send_message_as_reply_plain_and_markdown(fake: FakeTelegram) -> None:
    async with httpx.AsyncClient() as http:
        out = outbound(fake, http)
        pushed = await out.push(reply(), uuid.uuid4())
        await out.push(reply("**答案**：`x = 1`. 见 [文档](https://e.com/a?b=1)!", "markdown"), uuid.uuid4())
        await out.push(reply("topic", chat_id=-100123, message_id=3, kind="group", message_thread_id=7), uuid.uuid4())
        await outbound(fake, http, reply_to_message=False).push(reply("no quote"), uuid.uuid4())
    plain, md, topic, unquoted = fake.sent
    assert plain["text"] == "你好！ 1+1=2." and "parse_mode" not in plain
    assert plain["reply_parameters"] == {"message_id": 10, "allow_sending_without_reply": True}
    assert pushed.platform_message_id == str(plain["message_id"])
    assert md["parse_mode"] == "MarkdownV2" and md["plain"] == "答案：x = 1. 见 文档!"
    assert {e["type"] for e in md["entities"]} == {"bold", "code", "text_link"}
    assert topic["message_thread_id"] == 7 and topic["chat_id"] == -100123
    assert "reply_parameters" not in unquoted


async def test_error_model(fake: FakeTelegram) -> None:
    async with httpx.AsyncClient() as http:
        out = outbound(fake, http)
        fake.plan = [(429, "Too Many Requests: retry after 7", {"retry_after": 7})]
        with pytest.raises(Retryable) as r:
            await out.push(reply(), uuid.uuid4())
        assert r.value.retry_after == 7 and r.value.http_status == 429
        fake.plan = [(502, "Bad Gateway", {})]
        with pytest.raises(Retryable):
            await out.push(reply(), uuid.uuid4())
        with pytest.raises(Permanent, match="chat not found"):
            await out.push(reply(chat_id=99), uuid.uuid4())
        with pytest.raises(Permanent, match="blocked"):
            await out.push(reply(chat_id=777, message_id=None), uuid.uuid4())
        bad = TelegramOutbound(channel(api_base=fake.url, bot_token={"env": "TG_X_UNSET", "default": "1:bad"}), http,
                               TokenCache())
        with pytest.raises(Permanent, match="Unauthorized"):
            await bad.push(reply(), uuid.uuid4())
        assert not fake.sent
        # a group that became a supergroup: sent there, and remembered
        await out.push(reply("moved", chat_id=-556, kind="group"), uuid.uuid4())
        await out.push(reply("moved again", chat_id=-556, kind="group"), uuid.uuid4())
        assert [m["chat_id"] for m in fake.sent] == [-100556, -100556]
        # markdown the API cannot parse goes out as plain text
        fake.plan = [(400, "Bad Request: can't parse entities: Character '.' is reserved", {})]
        await out.push(reply("**ok** then", "markdown"), uuid.uuid4())
        assert fake.sent[-1]["text"] == "**ok** then" and "parse_mode" not in fake.sent[-1]


async def test_long_reply_split_and_resumed_after_a_failure(fake: FakeTelegram) -> None:
    text = "\n".join(f"第 {i} 行：" + "内容" * 40 for i in range(150))  # ~12k characters
    rid = uuid.uuid4()
    async with httpx.AsyncClient() as http:
        out = outbound(fake, http)
        original_send = out._send
        calls = 0

        async def flaky(body: dict[str, Any], plain: str | None) -> Any:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise Retryable("injected", 502)
            return await original_send(body, plain)

        out._send = flaky  # type: ignore[method-assign]
        with pytest.raises(Retryable):
            await out.push(reply(text), rid)
        await out.push(reply(text), rid)  # egress retries: the first part is not sent again
    assert "".join(m["text"] for m in fake.sent) == text
    assert len(fake.sent) == len(split_text(text)) >= 3
    assert "reply_parameters" in fake.sent[0] and all("reply_parameters" not in m for m in fake.sent[1:])


async def test_rate_limits(fake: FakeTelegram) -> None:
    assert TelegramOutbound.default_rate_per_minute == 60 and not TelegramOutbound.idempotent
    async with httpx.AsyncClient() as http:
        out = outbound(fake, http, group_rate_per_minute=120, global_rate_per_second=5)
        started = time.monotonic()
        await asyncio.gather(*(out.push(reply(f"m{i}", message_id=None), uuid.uuid4()) for i in range(7)))
        assert time.monotonic() - started >= 0.9  # 5 in the first second, the rest in the next
    # per target, applied by egress: groups about 20 a minute, other chats one a second (or the configured rate)
    assert out.rate_for(reply(chat_id=-100123, kind="group")) == 120
    assert outbound(fake, http).rate_for(reply(chat_id=-100123, kind="group")) == 20
    assert outbound(fake, http).rate_for(reply()) == 60
    assert outbound(fake, http, rate_limit_per_minute=30).rate_for(reply()) == 30


async def test_python_telegram_bot_speaks_to_the_fake(fake: FakeTelegram) -> None:
    bot = telegram.Bot(BOT_TOKEN, base_url=f"{fake.url}/bot")
    async with bot:
        assert bot.username == BOT_USERNAME
        msg = await bot.send_message(-100123, escape_markdown("v1.0 (beta) ready!", version=2), parse_mode="MarkdownV2",
                                     reply_parameters=telegram.ReplyParameters(1, allow_sending_without_reply=True))
        assert msg.text == "v1.0 (beta) ready!"
        with pytest.raises(telegram.error.BadRequest, match="(?i)can't parse entities"):
            await bot.send_message(-100123, "v1.0 (beta)", parse_mode="MarkdownV2")
        with pytest.raises(telegram.error.Forbidden):
            await bot.send_message(777, "hi")


KEYS = ["ok", "error_code", "description", "parameters", "retry_after", "migrate_to_chat_id", "result", "message_id"]

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
                await TelegramOutbound(channel(), http, TokenCache()).push(reply("x", fmt), uuid.uuid4())
            except (Retryable, Permanent):
                pass

    asyncio.run(run())


def test_documented_example_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = doc_config("telegram", monkeypatch)
    [ch] = [c for c in cfg.channels if c.type == "telegram"]
    assert isinstance(ch, TelegramChannel)
    TelegramInbound(ch)
    TelegramOutbound(ch, httpx.AsyncClient(), TokenCache())


async def test_group_replies_answer_the_askers_message_unless_turned_off(fake: FakeTelegram) -> None:
    asker = Sender(id="1001", name="alice")
    fake.remember(-100123, 3)
    asked = reply("好", chat_id=-100123, message_id=3, kind="group").model_copy(update={"asker": asker})
    async with httpx.AsyncClient() as http:
        await outbound(fake, http).push(asked, uuid.uuid4())
        await outbound(fake, http, mention_asker=False).push(asked, uuid.uuid4())
        await outbound(fake, http).push(asked.model_copy(update={"asker": None}), uuid.uuid4())  # a job's push
        await outbound(fake, http, mention_asker=False).push(reply("私聊"), uuid.uuid4())  # direct: a reply still
    addressed, off, job, direct = fake.sent
    assert addressed["reply_parameters"] == {"message_id": 3, "allow_sending_without_reply": True}
    assert "reply_parameters" not in off and "reply_parameters" not in job
    assert direct["reply_parameters"]["message_id"] == 10
