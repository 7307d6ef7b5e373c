"""Feishu's long connection against a fake gateway on real sockets: lark-oapi's own ``ws.Client`` proves the
fake speaks the platform's framing, then our connection is held to the ack-after-deliver contract."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import lark_oapi as lark
import orjson
import pytest
import yaml
from lark_oapi.ws.pb.pbbp2_pb2 import Frame as SdkFrame
from pydantic import ValidationError

from agentbus.channeltypes.feishu import FeishuChannel
from agentbus.services.ingress.channels.base import HttpRequest, Rejected
from agentbus.services.ingress.channels.feishu import FeishuInbound
from agentbus.services.ingress.inbound import Inbound
from agentbus.services.ingress.longconn import connection_class
from agentbus.services.ingress.longconn import feishu_frame as ff
from agentbus.services.ingress.longconn.base import LinkState
from agentbus.services.ingress.longconn.feishu import FeishuLongConnection, FeishuStreamError
from tests.fakes.feishu import event_request, message_event
from tests.fakes.feishu_ws import FakeFeishuGateway
from tests.support.longconn import Recorder, finished, stop

APP_ID, APP_SECRET = "cli_a1b2c3d4e5", "app-secret-stream-1"
TOKEN, KEY = "vt_stream_token", "ek_stream_key"


def channel(fake: FakeFeishuGateway | None = None, **over: Any) -> FeishuChannel:
    raw: dict[str, Any] = {
        "id": "fsws", "type": "feishu", "tenant": "acme", "agent": "assistant", "mode": "stream",
        "api_base": fake.url if fake else "https://open.feishu.cn",
        "app_id": {"env": "FS_APP_ID_UNSET", "default": APP_ID},
        "app_secret": {"env": "FS_APP_SECRET_UNSET", "default": APP_SECRET},
    }
    raw.update(over)
    return FeishuChannel.model_validate({k: v for k, v in raw.items() if v is not None})



@pytest.fixture
async def fake() -> AsyncIterator[FakeFeishuGateway]:
    f = await FakeFeishuGateway({APP_ID: APP_SECRET}).start()
    yield f
    await f.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


def connection(ch: FeishuChannel, deliver: Recorder, http: httpx.AsyncClient) -> tuple[FeishuLongConnection,
                                                                                         LinkState]:
    state = LinkState()
    return FeishuLongConnection(ch, FeishuInbound(ch), deliver, http, state), state




def acks_of(fake: FakeFeishuGateway, message_id: str) -> list[int | None]:
    return [a.code for a in fake.acks if a.message_id == message_id]


# ---------------------------------------------------------------- the fake is faithful


async def test_lark_oapis_own_client_connects_to_the_fake_and_answers_events(fake: FakeFeishuGateway) -> None:
    import lark_oapi.ws.client as sdk_ws

    fake.ping_interval = 1
    seen: list[Any] = []
    handler = (lark.EventDispatcherHandler.builder("", "")
               .register_p2_im_message_receive_v1(lambda data: seen.append(data)).build())
    client = lark.ws.Client(APP_ID, APP_SECRET, event_handler=handler, domain=fake.url, auto_reconnect=False,
                            log_level=lark.LogLevel.ERROR)
    sdk_loop = sdk_ws.loop  # the SDK runs on a loop of its own, created at import: here in a thread of its own

    def serve() -> None:
        try:
            client.start()
        except RuntimeError:  # "Event loop stopped before Future completed": how the test ends it
            pass
        sdk_loop.run_until_complete(client._disconnect())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        await fake.wait_connected()
        small = message_event(token=TOKEN, text="你好 from the sdk")
        large = message_event(token=TOKEN, text="长" * 3000)
        first = await fake.push(small)
        second = await fake.push(large, parts=3)  # split, and sent out of order
        await fake.wait_acks(2)
        await fake.wait_pings(2)
    finally:
        sdk_loop.call_soon_threadsafe(sdk_loop.stop)
        await asyncio.to_thread(thread.join, 30)
    assert [e.header.event_id for e in seen] == [small["header"]["event_id"], large["header"]["event_id"]]
    assert seen[1].event.message.content == large["event"]["message"]["content"]
    by_id = {a.message_id: a for a in fake.acks}
    assert by_id[first].code == by_id[second].code == 200 and by_id[first].headers["biz_rt"].isdigit()
    assert fake.endpoint_calls == 1 and fake.pings[0] == fake.pings[-1] >= 7000  # the service id of the URL


def test_our_frames_and_the_sdks_are_the_same_bytes() -> None:
    sdk = SdkFrame()
    sdk.ParseFromString(ff.ping(7001))
    assert (sdk.service, sdk.method, [(h.key, h.value) for h in sdk.headers]) == (7001, 0, [("type", "ping")])
    data = SdkFrame(SeqID=5, LogID=9, service=7001, method=1, payload=b'{"schema":"2.0"}', LogIDNew="l-1")
    for k, v in (("type", "event"), ("message_id", "m1"), ("sum", "1"), ("seq", "0"), ("trace_id", "t1")):
        h = data.headers.add()
        h.key, h.value = k, v
    ours = ff.parse(data.SerializeToString())
    assert ff.header(ours, ff.MESSAGE_ID) == "m1" and ours.LogIDNew == "l-1" and ours.payload == data.payload
    back = SdkFrame()
    back.ParseFromString(ff.answer(ours, 200, 12))
    assert (back.SeqID, back.LogID, back.service, back.method) == (5, 9, 7001, 1)
    assert [(h.key, h.value) for h in back.headers][-1] == ("biz_rt", "12")
    assert orjson.loads(back.payload) == {"code": 200}
    with pytest.raises(ff.FrameError):
        ff.parse(b"\xff\xff not protobuf")


# ---------------------------------------------------------------- our connection


async def test_event_is_answered_only_after_deliver_returned(fake: FakeFeishuGateway, http: httpx.AsyncClient) -> None:
    deliver = Recorder()
    conn, state = connection(channel(fake), deliver, http)
    task = asyncio.create_task(conn.run())
    await fake.wait_connected()
    held, release = asyncio.Event(), asyncio.Event()

    async def hold_the_first(inbound: Inbound) -> None:
        if inbound.message is not None and inbound.message.text == "slow":
            held.set()
            await release.wait()

    deliver.during = hold_the_first
    slow_event = message_event(token=TOKEN, text="slow")
    slow = await fake.push(slow_event)
    await held.wait()
    quick = await fake.push(message_event(token=TOKEN, text="quick"))
    await fake.wait_acks(1)
    # the second event was answered while the first was still being published: the first was not
    assert acks_of(fake, quick) == [200] and acks_of(fake, slow) == []
    release.set()
    await fake.wait_acks(2)
    assert acks_of(fake, slow) == [200] and fake.acks[-1].headers["biz_rt"].isdigit() and state.connected
    # the same message and de-duplication key as the encrypted, signed webhook request of the same event
    got = next(i for i in deliver.got if i.message is not None and i.message.text == "slow")
    hook = FeishuInbound(channel(fake, mode="webhook", verification_token={"env": "X_UNSET", "default": TOKEN},
                                 encrypt_key={"env": "Y_UNSET", "default": KEY}))
    body, headers = event_request(slow_event, encrypt_key=KEY)
    webhook = await hook.receive(HttpRequest("POST", "/v1/webhooks/fsws", headers, {}, body, time.time()))
    assert got == webhook and got.dedupe_id == slow_event["header"]["event_id"]
    await stop(task)
    assert not state.connected and state.last_error is None
    await fake.wait_disconnected()  # cancellation closed the socket


async def test_failed_deliver_answers_500_and_the_redelivery_has_the_same_key(
    fake: FakeFeishuGateway, http: httpx.AsyncClient
) -> None:
    deliver = Recorder()
    conn, state = connection(channel(fake), deliver, http)
    task = asyncio.create_task(conn.run())
    await fake.wait_connected()
    event = message_event(token=TOKEN, text="please answer once")
    deliver.fail = 1
    first = await fake.push(event)  # answered 500: the fake, like Feishu, pushes it again
    acks = await fake.wait_acks(2)
    assert acks_of(fake, first) == [500] and "biz_rt" not in acks[0].headers
    assert acks[1].code == 200 and acks[1].event_id == event["header"]["event_id"]
    [redelivered] = deliver.got
    assert redelivered.dedupe_id == event["header"]["event_id"]
    assert state.connected and not task.done() and "broker unavailable" in (state.last_error or "")
    await stop(task)


async def test_split_events_junk_and_other_frames(fake: FakeFeishuGateway, http: httpx.AsyncClient) -> None:
    deliver = Recorder()
    conn, state = connection(channel(fake), deliver, http)
    task = asyncio.create_task(conn.run())
    await fake.wait_connected()
    await fake.send_raw(b"\x08\x01 not a frame")
    card = SdkFrame(SeqID=1, LogID=1, service=1, method=1, payload=b"{}")
    for k, v in (("type", "card"), ("message_id", "c1"), ("sum", "1"), ("seq", "0")):
        h = card.headers.add()
        h.key, h.value = k, v
    await fake.send_raw(card.SerializeToString())  # card callbacks are not subscribed: left unanswered
    other = message_event(token=TOKEN, text="x")
    other["header"]["event_type"] = "im.chat.member.bot.added_v1"
    ignored = await fake.push(other)
    broken = await fake.push({"schema": "2.0", "header": {"event_type": "im.message.receive_v1"}})
    big = message_event(token=TOKEN, text="很长的消息 " * 2000)
    split = await fake.push(big, parts=4)
    await fake.wait_acks(3)
    assert acks_of(fake, ignored) == acks_of(fake, broken) == acks_of(fake, split) == [200]
    # the malformed event is answered (a retry would not mend it) and nothing of it is delivered
    notice, long_one = deliver.got
    assert notice.message is None and notice.note == "event type 'im.chat.member.bot.added_v1' ignored"
    assert long_one.message is not None and long_one.message.text == "很长的消息 " * 1999 + "很长的消息"
    assert len(deliver.got) == 2 and state.connected and not task.done()
    await stop(task)


async def test_refused_sessions_raise_and_show_down(fake: FakeFeishuGateway, http: httpx.AsyncClient) -> None:
    deliver = Recorder()
    wrong, state = connection(channel(fake, app_secret={"env": "X_UNSET", "default": "not the secret"}), deliver,
                              http)
    with pytest.raises(FeishuStreamError, match="10014"):
        await wrong.run()
    assert not state.connected and "10014" in (state.last_error or "")
    fake.refuse = (514, "exceed connection limit", 1000040350)
    conn, state = connection(channel(fake), deliver, http)
    with pytest.raises(FeishuStreamError, match="handshake refused: 514 exceed connection limit"):
        await conn.run()
    assert not state.connected and fake.connections == 0
    gone, state = connection(channel(api_base="http://127.0.0.1:9"), deliver, http)
    with pytest.raises(httpx.ConnectError):
        await gone.run()
    assert not state.connected and state.last_error
    assert not deliver.got


async def test_dropped_connection_raises(fake: FakeFeishuGateway, http: httpx.AsyncClient) -> None:
    deliver = Recorder()
    conn, state = connection(channel(fake), deliver, http)
    for n in (1, 2):  # the supervisor's next run is a new session with a new endpoint call
        task = asyncio.create_task(conn.run())
        await fake.wait_connected(n)
        first = await fake.push(message_event(token=TOKEN, text=f"before the drop {n}"))
        await fake.wait_acks(n)
        assert acks_of(fake, first) == [200] and state.connected
        await fake.drop()
        failure = await finished(task)
        assert isinstance(failure, FeishuStreamError) and "closed" in str(failure)
        assert not state.connected and state.last_error
    assert fake.endpoint_calls == 2


async def test_pings_follow_the_client_config_and_a_silent_link_ends(
    fake: FakeFeishuGateway, http: httpx.AsyncClient
) -> None:
    fake.ping_interval = 30  # the endpoint's ClientConfig; the first pong shortens it
    fake.pong_config = {"ReconnectCount": -1, "ReconnectInterval": 120, "ReconnectNonce": 30, "PingInterval": 0.2}
    deliver = Recorder()
    conn, state = connection(channel(fake), deliver, http)
    task = asyncio.create_task(conn.run())
    await fake.wait_connected()
    await fake.wait_pings(4)  # only the pong's PingInterval makes a second ping come this soon
    assert set(fake.pings) == {7000}
    eid = await fake.push(message_event(token=TOKEN, text="after the pings"))
    await fake.wait_acks(1)
    assert acks_of(fake, eid) == [200] and not task.done() and state.connected
    fake.answer_pings = False  # a half-open link: the socket stays open, nothing comes back
    failure = await finished(task)
    assert isinstance(failure, FeishuStreamError) and "no pong for 3 ping intervals" in str(failure)
    assert not state.connected and "no pong" in (state.last_error or "")


async def test_registered_and_configured(fake: FakeFeishuGateway) -> None:
    assert connection_class("feishu") is FeishuLongConnection
    with pytest.raises(ValidationError, match="app_id and app_secret"):
        channel(app_id=None, app_secret=None, bot_webhook={"token": {"env": "X_UNSET", "default": "t"}})
    # stream mode needs no verification token or encrypt key, and then no webhook request gets in
    ch = channel(fake)
    body, headers = event_request(message_event(token=TOKEN, text="x"), encrypt_key=KEY)
    with pytest.raises(Rejected) as rej:
        await FeishuInbound(ch).receive(HttpRequest("POST", "/v1/webhooks/fsws", headers, {}, body, time.time()))
    assert rej.value.status == 403


def test_documented_stream_example_parses() -> None:
    text = (Path(__file__).resolve().parents[3] / "docs" / "channels" / "feishu.md").read_text(encoding="utf-8")
    section = text.split("## Stream mode", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    [raw] = yaml.safe_load(block)["channels"]
    ch = FeishuChannel.model_validate(raw)
    assert ch.mode == "stream" and ch.app_id is not None and ch.encrypt_key is None
