"""DingTalk Stream mode against a fake gateway on real sockets: the official dingtalk_stream client proves the
fake speaks DingTalk's protocol, then our connection is held to the ack-after-deliver contract."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from dingtalk_stream import AckMessage, CallbackMessage, ChatbotHandler, ChatbotMessage, Credential
from dingtalk_stream.stream import DingTalkStreamClient
from pydantic import ValidationError

from agentbus.channeltypes.dingtalk import DingTalkChannel
from agentbus.services.ingress.channels.base import HttpRequest
from agentbus.services.ingress.channels.dingtalk import DingTalkInbound
from agentbus.services.ingress.inbound import Inbound
from agentbus.services.ingress.longconn import connection_class
from agentbus.services.ingress.longconn.base import LinkState
from agentbus.services.ingress.longconn.dingtalk import DingTalkStream, SessionEnded
from tests.fakes.dingtalk import robot_headers, robot_message
from tests.fakes.dingtalk_stream import ROBOT_TOPIC, FakeDingTalkStream
from tests.support.longconn import Recorder, finished

KEY, SECRET = "dingappkey0001", "app-secret-0001"


def channel(fake: FakeDingTalkStream | None = None, **over: Any) -> DingTalkChannel:
    raw: dict[str, Any] = {
        "id": "dt", "type": "dingtalk", "tenant": "acme", "agent": "assistant", "mode": "stream",
        "stream_base_url": fake.url if fake else "https://api.dingtalk.com",
        "app_key": {"env": "DT_KEY_UNSET", "default": KEY},
        "app_secret": {"env": "DT_SECRET_UNSET", "default": SECRET},
    }
    raw.update(over)
    return DingTalkChannel.model_validate(raw)



@pytest.fixture
async def fake() -> AsyncIterator[FakeDingTalkStream]:
    f = await FakeDingTalkStream(KEY, SECRET).start()
    yield f
    await f.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


def connection(ch: DingTalkChannel, deliver: Recorder, http: httpx.AsyncClient) -> tuple[DingTalkStream, LinkState]:
    state = LinkState()
    return DingTalkStream(ch, DingTalkInbound(ch), deliver, http, state), state



# ---------------------------------------------------------------- the fake is faithful


class SdkPeer:
    """The official client in a thread of its own (it opens the connection with blocking ``requests``)."""

    def __init__(self) -> None:
        self.got: list[ChatbotMessage] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except asyncio.CancelledError:
            pass  # how stop() ends it

    async def _main(self) -> None:
        peer = self

        class Handler(ChatbotHandler):  # type: ignore[misc]
            async def process(self, callback: CallbackMessage) -> tuple[int, str]:
                peer.got.append(ChatbotMessage.from_dict(callback.data))
                return AckMessage.STATUS_OK, "OK"

        client = DingTalkStreamClient(Credential(KEY, SECRET))
        client.register_callback_handler(ChatbotMessage.TOPIC, Handler())
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()  # type: ignore[assignment]
        self._started.set()
        await client.start()

    def start(self) -> None:
        self._thread.start()
        self._started.wait(30)

    def stop(self) -> None:
        # the SDK catches one cancellation and sleeps before reconnecting: cancel until it is gone
        while self._thread.is_alive():
            assert self._loop is not None and self._task is not None
            self._loop.call_soon_threadsafe(self._task.cancel)
            self._thread.join(0.5)


async def test_the_official_client_connects_to_the_fake_and_acks(
    fake: FakeDingTalkStream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DingTalkStreamClient, "OPEN_CONNECTION_API", fake.url + "/v1.0/gateway/connections/open")
    assert ChatbotMessage.TOPIC == ROBOT_TOPIC
    peer = SdkPeer()
    peer.start()
    try:
        link = await fake.wait_link()
        body = robot_message("hello from the sdk", group=True, msg_id="msgSdk0001")
        mid = await fake.push_robot_message(body)
        await fake.wait(lambda: mid in fake.acked)
        ping, opaque = await fake.ping()
        await fake.wait(lambda: fake.answer_to(ping) is not None)
        await fake.disconnect()
        await asyncio.wait_for(link.closed.wait(), 30)  # the SDK closes on disconnect
    finally:
        await asyncio.to_thread(peer.stop)
    [got] = peer.got
    assert got.message_id == "msgSdk0001" and got.text.content == "hello from the sdk"
    assert got.conversation_type == "2" and got.sender_staff_id == body["senderStaffId"]
    assert fake.opens[0]["subscriptions"] == [{"type": "CALLBACK", "topic": ROBOT_TOPIC}]
    ack = fake.answer_to(mid)
    assert ack == {"code": 200, "headers": {"contentType": "application/json", "messageId": mid},
                   "message": "", "data": json.dumps({"response": "OK"})}
    pong = fake.answer_to(ping)
    assert pong is not None and pong["code"] == 200 and orjson.loads(pong["data"]) == {"opaque": opaque}


async def test_the_sdk_is_refused_what_dingtalk_refuses(
    fake: FakeDingTalkStream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DingTalkStreamClient, "OPEN_CONNECTION_API", fake.url + "/v1.0/gateway/connections/open")
    client = DingTalkStreamClient(Credential(KEY, "wrong-secret"))
    client.register_callback_handler(ChatbotMessage.TOPIC, ChatbotHandler())
    assert await asyncio.to_thread(client.open_connection) is None  # the SDK's "open connection failed"
    good = DingTalkStreamClient(Credential(KEY, SECRET))
    good.register_callback_handler(ChatbotMessage.TOPIC, ChatbotHandler())
    answer = await asyncio.to_thread(good.open_connection)
    assert set(answer) == {"endpoint", "ticket"} and answer["endpoint"].startswith("ws://")


# ---------------------------------------------------------------- our connection


async def test_message_is_acked_only_after_deliver_returned(fake: FakeDingTalkStream, http: httpx.AsyncClient) -> None:
    deliver = Recorder()
    conn, state = connection(channel(fake), deliver, http)
    task = asyncio.create_task(conn.run())
    link = await fake.wait_link()
    body = robot_message("你好, summarise this", group=True, in_at_list=True)
    seen_unacked: list[bool] = []

    async def barrier(inbound: Inbound) -> None:
        # a ping round trip: anything the client wrote before its answer has reached the fake by then
        ping, _ = await fake.ping()
        await fake.wait(lambda: fake.answer_to(ping) is not None)
        seen_unacked.append(not fake.acked)

    deliver.during = barrier
    mid = await fake.push_robot_message(body)
    await fake.wait(lambda: mid in fake.acked)
    assert seen_unacked == [True]  # the ping was answered while the message was being published
    assert state.connected and state.last_error is None
    # the same message and key as the signed HTTP callback of the same body
    [got] = deliver.got
    hook = DingTalkInbound(channel(fake, mode="webhook"))
    webhook = await hook.receive(HttpRequest("POST", "/v1/webhooks/dt", robot_headers(SECRET), {},
                                             orjson.dumps(body), time.time()))
    assert got == webhook and got.dedupe_id == body["msgId"]
    assert got.message is not None and got.message.text == "你好, summarise this"
    assert got.message.reply_route["open_conversation_id"] == body["conversationId"]
    # the answer has the SDK's shape (AckMessage.to_dict) for the same message
    sdk = AckMessage()
    sdk.headers.message_id, sdk.headers.content_type = mid, "application/json"
    ours = fake.answer_to(mid)
    assert ours is not None and set(ours) == set(sdk.to_dict()) and ours["headers"] == sdk.to_dict()["headers"]
    assert ours["code"] == 200 and isinstance(ours["data"], str)
    [opened] = fake.opens
    assert opened["clientId"] == KEY and opened["subscriptions"] == [{"type": "CALLBACK", "topic": ROBOT_TOPIC}]
    task.cancel()
    await asyncio.wait({task})
    await asyncio.wait_for(link.closed.wait(), 30)  # cancellation closes the socket
    assert not state.connected and state.last_error is None


async def test_failed_deliver_is_not_acked_and_the_redelivery_has_the_same_key(
    fake: FakeDingTalkStream, http: httpx.AsyncClient
) -> None:
    deliver = Recorder()
    conn, state = connection(channel(fake), deliver, http)
    task = asyncio.create_task(conn.run())
    await fake.wait_link()
    body = robot_message("please answer once")
    deliver.fail = 1
    first = await fake.push_robot_message(body)
    other = await fake.push_robot_message(robot_message("another question"))
    await fake.wait(lambda: other in fake.acked)  # handled in order: the first is settled by now
    assert fake.answer_to(first) is None and first in fake.pending and state.connected
    assert state.last_error is not None and "broker unavailable" in state.last_error
    again = await fake.redeliver(first)
    await fake.wait(lambda: again in fake.acked)
    assert fake.answer_to(first) is None and not fake.pending
    _, redelivered = deliver.got
    assert redelivered.dedupe_id == body["msgId"]  # from the message, not the frame: published once
    task.cancel()
    await asyncio.wait({task})


async def test_pending_messages_come_again_on_the_next_session(
    fake: FakeDingTalkStream, http: httpx.AsyncClient
) -> None:
    deliver = Recorder()
    conn, state = connection(channel(fake), deliver, http)
    task = asyncio.create_task(conn.run())
    link = await fake.wait_link()
    body = robot_message("sent while the broker is down")
    deliver.fail = 1
    mid = await fake.push_robot_message(body)
    later = await fake.push_robot_message(robot_message("a later one"))
    await fake.wait(lambda: later in fake.acked)  # handled in order: the first one failed by now
    assert state.last_error is not None and mid in fake.pending
    fake.drop(link)
    assert isinstance(await finished(task), SessionEnded)
    task = asyncio.create_task(conn.run())
    await fake.wait_link(2)
    await fake.wait(lambda: not fake.pending)
    assert fake.answer_to(mid) is None and deliver.got[-1].dedupe_id == body["msgId"] and len(deliver.got) == 2
    assert state.connected and len(fake.opens) == 2
    task.cancel()
    await asyncio.wait({task})


async def test_other_frames_and_junk(fake: FakeDingTalkStream, http: httpx.AsyncClient) -> None:
    deliver = Recorder()
    conn, state = connection(channel(fake), deliver, http)
    task = asyncio.create_task(conn.run())
    await fake.wait_link()
    await fake.send_raw("not json")
    await fake.send_raw('{"type": "CALLBACK", "headers": {"topic": "/v1.0/im/bot/messages/get"}, "data": "{}"}')
    event = await fake.push("EVENT", "*", {"x": 1}, eventType="chat_update_title", eventId="ev1")
    card = await fake.push("CALLBACK", "/v1.0/card/instances/callback", {"outTrackId": "t1"})
    broken = await fake.push("CALLBACK", ROBOT_TOPIC, {"msgId": "m-broken"})
    picture = await fake.push_robot_message(robot_message("", msgtype="picture"))
    last = await fake.push_robot_message(robot_message("still here"))
    await fake.wait(lambda: last in fake.acked)
    assert [fake.answer_to(m)["code"] for m in (event, card)] == [404, 404]  # type: ignore[index]
    assert fake.answer_to(broken)["code"] == 200  # type: ignore[index]  # a retry would not mend it
    assert picture in fake.acked
    assert [i.message.text if i.message else i.note for i in deliver.got] == [
        "picture message without text: not handled", "still here"]
    assert state.connected and not task.done()
    task.cancel()
    await asyncio.wait({task})


async def test_disconnect_ends_the_session_after_the_frames_already_read(
    fake: FakeDingTalkStream, http: httpx.AsyncClient
) -> None:
    deliver = Recorder()
    conn, state = connection(channel(fake), deliver, http)
    task = asyncio.create_task(conn.run())
    link = await fake.wait_link()
    mid = await fake.push_robot_message(robot_message("just before the move"))
    await fake.disconnect()
    assert await finished(task) is None  # a normal end: the supervisor opens the next session
    assert mid in fake.acked and len(deliver.got) == 1
    await asyncio.wait_for(link.closed.wait(), 30)
    assert not state.connected and state.last_error is None


async def test_refused_sessions_raise_and_show_down(fake: FakeDingTalkStream, http: httpx.AsyncClient) -> None:
    deliver = Recorder()
    fake.open_status = 503
    conn, state = connection(channel(fake), deliver, http)
    with pytest.raises(ConnectionError, match="HTTP 503"):
        await conn.run()
    assert not state.connected and "ServiceUnavailable" in (state.last_error or "")
    fake.open_status = None
    wrong, _ = connection(channel(fake, app_secret={"env": "X_UNSET", "default": "nope"}), deliver, http)
    with pytest.raises(ConnectionError, match="invalidClientIdOrSecret"):
        await wrong.run()
    fake.refuse_socket = True
    with pytest.raises(SessionEnded, match="HTTP 403"):
        await conn.run()
    assert not state.connected and not fake.links
    gone, state = connection(channel(stream_base_url="http://127.0.0.1:9"), deliver, http)
    with pytest.raises(httpx.ConnectError):
        await gone.run()
    assert not state.connected and state.last_error
    assert not deliver.got


async def test_dropped_and_closed_links_raise(fake: FakeDingTalkStream, http: httpx.AsyncClient) -> None:
    deliver = Recorder()
    conn, state = connection(channel(fake), deliver, http)
    for n, end in ((1, "drop"), (2, "close")):
        task = asyncio.create_task(conn.run())
        link = await fake.wait_link(n)
        first = await fake.push_robot_message(robot_message(f"before the {end}"))
        await fake.wait(lambda: first in fake.acked)  # noqa: B023
        assert state.connected
        if end == "drop":
            fake.drop(link)
        else:
            await link.ws.close(code=1011, message=b"gateway restart")
        failure = await finished(task)
        assert isinstance(failure, SessionEnded) and not state.connected and state.last_error


async def test_keepalive_and_a_silent_link_is_dropped(fake: FakeDingTalkStream, http: httpx.AsyncClient) -> None:
    deliver = Recorder()
    conn, state = connection(channel(fake, socket_ping_interval_s=1.0), deliver, http)
    task = asyncio.create_task(conn.run())
    link = await fake.wait_link()
    ping, opaque = await fake.ping()
    await fake.wait(lambda: fake.answer_to(ping) is not None)
    answer = fake.answer_to(ping)
    assert answer is not None and answer["code"] == 200 and orjson.loads(answer["data"]) == {"opaque": opaque}
    await fake.wait(lambda: len(link.pings) >= 2)  # our WebSocket pings keep the link alive
    mid = await fake.push_robot_message(robot_message("after the pings"))
    await fake.wait(lambda: mid in fake.acked)
    assert not task.done() and state.connected
    fake.answer_pings = False  # a half-open link: nothing comes back
    failure = await finished(task)
    assert failure is not None and not state.connected and state.last_error


async def test_registered_and_configured() -> None:
    assert connection_class("dingtalk") is DingTalkStream
    with pytest.raises(ValidationError, match="stream mode needs app_key and app_secret"):
        channel(app_key=None, app_secret=None, custom_robots={"cid1": {"access_token": {"env": "X", "default": "t"}}})
    with pytest.raises(ValidationError):
        channel(socket_ping_interval_s=0)
    with pytest.raises(ValidationError, match="must be http"):
        channel(stream_base_url="ftp://x")
    assert channel(stream_base_url=None).stream_base == "https://api.dingtalk.com"


def test_documented_stream_example_parses() -> None:
    text = (Path(__file__).resolve().parents[3] / "docs" / "channels" / "dingtalk.md").read_text(encoding="utf-8")
    section = text.split("## Stream mode", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    [raw] = yaml.safe_load(block)["channels"]
    ch = DingTalkChannel.model_validate(raw)
    assert ch.mode == "stream" and ch.app_key is not None and ch.callback_token is None
