"""Slack Socket Mode against a fake gateway on real sockets: slack_sdk's own client proves the fake speaks
Slack's protocol, then our connection is held to the ack-after-deliver contract."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import ValidationError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from agentbus.channeltypes.slack import SlackChannel
from agentbus.services.ingress.channels.base import HttpRequest, Rejected
from agentbus.services.ingress.channels.slack import SlackInbound
from agentbus.services.ingress.inbound import Inbound
from agentbus.services.ingress.longconn import connection_class
from agentbus.services.ingress.longconn.base import LinkState
from agentbus.services.ingress.longconn.slack import SessionEnded, SlackSocketMode
from tests.fakes.slack import BOT_USER, app_mention, event_callback, message, signed
from tests.fakes.slack_socket import FakeSlackSocket
from tests.support.longconn import Recorder, finished

APP_TOKEN = "xapp-1-A0APP00001-1234567890123-0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
BOT_TOKEN = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def channel(fake: FakeSlackSocket | None = None, **over: Any) -> SlackChannel:
    raw: dict[str, Any] = {
        "id": "sl", "type": "slack", "tenant": "acme", "agent": "assistant", "mode": "stream",
        "api_base": fake.url if fake else "https://slack.com/api",
        "app_token": {"env": "SL_APP_TOKEN_UNSET", "default": APP_TOKEN},
        "bot_token": {"env": "SL_TOKEN_UNSET", "default": BOT_TOKEN},
    }
    raw.update(over)
    return SlackChannel.model_validate(raw)



@pytest.fixture
async def fake() -> AsyncIterator[FakeSlackSocket]:
    f = await FakeSlackSocket({APP_TOKEN}).start()
    yield f
    await f.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


def connection(ch: SlackChannel, deliver: Recorder, http: httpx.AsyncClient) -> tuple[SlackSocketMode, LinkState]:
    state = LinkState()
    return SlackSocketMode(ch, SlackInbound(ch), deliver, http, state), state



# ---------------------------------------------------------------- the fake is faithful


async def test_slack_sdks_own_client_connects_to_the_fake_and_acks(fake: FakeSlackSocket) -> None:
    got: list[SocketModeRequest] = []

    async def on_request(client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        got.append(req)
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

    client = SocketModeClient(app_token=APP_TOKEN, web_client=AsyncWebClient(base_url=fake.url + "/"),
                              auto_reconnect_enabled=False)
    client.socket_mode_request_listeners.append(on_request)
    try:
        await client.connect()
        link = await fake.wait_link()
        payload = event_callback(message("hello from the sdk"))
        eid = await fake.push(payload, retry_attempt=1, retry_reason="timeout")
        await fake.wait(lambda: fake.acked(eid))
    finally:
        await client.close()
    [req] = got
    assert req.type == "events_api" and req.envelope_id == eid and req.payload == payload
    assert req.retry_attempt == 1 and req.retry_reason == "timeout"
    assert link.received == [{"envelope_id": eid}]
    assert any(p.startswith(b"sdk-ping-pong:") for p in link.pings)  # the SDK's first ping was answered
    assert fake.opened == 1


async def test_the_sdk_is_refused_what_slack_refuses(fake: FakeSlackSocket) -> None:
    from slack_sdk.errors import SlackApiError

    for token, error in (("xapp-1-unknown", "invalid_auth"), (BOT_TOKEN, "not_allowed_token_type")):
        web = AsyncWebClient(base_url=fake.url + "/")
        with pytest.raises(SlackApiError, match=error):
            await web.apps_connections_open(app_token=token)


# ---------------------------------------------------------------- our connection


async def test_event_is_acked_only_after_deliver_returned(fake: FakeSlackSocket, http: httpx.AsyncClient) -> None:
    deliver = Recorder()
    conn, state = connection(channel(fake), deliver, http)
    task = asyncio.create_task(conn.run())
    link = await fake.wait_link()
    payload = event_callback(app_mention(f"<@{BOT_USER}> 你好, summarise this"))
    seen_unacked: list[bool] = []

    async def barrier(inbound: Inbound) -> None:
        # a ping/pong round trip: anything the client wrote before its pong has reached the fake by then
        mark = uuid.uuid4().hex.encode()
        await fake.ping(mark)
        await fake.wait(lambda: mark in link.pongs)
        seen_unacked.append(not fake.acks)

    deliver.during = barrier
    eid = await fake.push(payload)
    await fake.wait(lambda: fake.acked(eid))
    assert seen_unacked == [True]
    assert state.connected and len(deliver.got) == 1 and state.last_error is None
    # the same message and key as the signed webhook request of the same payload
    [got] = deliver.got
    body, headers = signed(SECRET, payload)
    hook = SlackInbound(channel(fake, mode="webhook", signing_secret={"env": "X_UNSET", "default": SECRET}))
    webhook = await hook.receive(HttpRequest("POST", "/v1/webhooks/sl", headers, {}, body, time.time()))
    assert got == webhook and got.message is not None and got.message.text == "你好, summarise this"
    assert link.received == [{"envelope_id": eid}]
    task.cancel()
    await asyncio.wait({task})
    await asyncio.wait_for(link.closed.wait(), 30)  # cancellation closes the socket
    assert not state.connected and state.last_error is None


async def test_failed_deliver_is_not_acked_and_the_redelivery_has_the_same_key(
    fake: FakeSlackSocket, http: httpx.AsyncClient
) -> None:
    deliver = Recorder()
    conn, state = connection(channel(fake), deliver, http)
    task = asyncio.create_task(conn.run())
    await fake.wait_link()
    payload = event_callback(message("please answer once"))
    deliver.fail = 1
    first = await fake.push(payload)
    other = await fake.push(event_callback(message("another question")))
    await fake.wait(lambda: fake.acked(other))  # handled in order: the first is settled by now
    assert not fake.acked(first) and state.connected
    assert state.last_error is not None and "broker unavailable" in state.last_error
    retry = await fake.push(payload, retry_attempt=1, retry_reason="timeout")
    await fake.wait(lambda: fake.acked(retry))
    assert not fake.acked(first)
    _, redelivered = deliver.got
    # the key comes from the message, not the envelope: the acceptor publishes the retry once
    assert redelivered.dedupe_id == f"{payload['event']['channel']}:{payload['event']['ts']}"
    assert len(deliver.got) == 2
    task.cancel()
    await asyncio.wait({task})


async def test_other_envelopes_and_junk(fake: FakeSlackSocket, http: httpx.AsyncClient) -> None:
    deliver = Recorder()
    conn, state = connection(channel(fake), deliver, http)
    task = asyncio.create_task(conn.run())
    await fake.wait_link()
    await fake.send_raw("not json")
    await fake.send_raw('{"type": "events_api", "payload": {}}')  # no envelope id: nothing to ack
    slash = await fake.push({"command": "/ask", "text": "hi"}, kind="slash_commands", accepts_response_payload=True)
    click = await fake.push({"type": "block_actions"}, kind="interactive")
    broken = await fake.push({"type": "event_callback", "event_id": "Ev1", "event": {"type": "message"}})
    reaction = await fake.push(event_callback({"type": "reaction_added", "user": "U1"}))
    last = await fake.push(event_callback(message("still here")))
    await fake.wait(lambda: fake.acked(last))
    assert all(fake.acked(e) for e in (slash, click, broken, reaction))
    # the malformed event is acknowledged (a retry would not mend it) and nothing of it is delivered
    assert [i.message.text if i.message else i.note for i in deliver.got] == [
        "event type 'reaction_added' ignored", "still here"]
    assert state.connected and not task.done()
    task.cancel()
    await asyncio.wait({task})


async def test_disconnect_ends_the_session_after_the_events_already_read(
    fake: FakeSlackSocket, http: httpx.AsyncClient
) -> None:
    deliver = Recorder()
    conn, state = connection(channel(fake), deliver, http)
    task = asyncio.create_task(conn.run())
    link = await fake.wait_link()
    eid = await fake.push(event_callback(message("just before the refresh")))
    await fake.disconnect("refresh_requested")
    assert await finished(task) is None  # a normal end: the supervisor opens the next session
    assert fake.acked(eid) and len(deliver.got) == 1
    await asyncio.wait_for(link.closed.wait(), 30)
    assert not state.connected and state.last_error is None
    # the next run is a new session with a fresh URL
    task = asyncio.create_task(conn.run())
    await fake.wait_link(2)
    await fake.disconnect("link_disabled")
    failure = await finished(task)
    assert isinstance(failure, SessionEnded) and "link_disabled" in str(failure)
    assert fake.opened == 2 and not state.connected and "link_disabled" in (state.last_error or "")


async def test_refused_sessions_raise_and_show_down(fake: FakeSlackSocket, http: httpx.AsyncClient) -> None:
    deliver = Recorder()
    fake.open_error = "invalid_auth"
    conn, state = connection(channel(fake), deliver, http)
    with pytest.raises(ConnectionError, match="invalid_auth"):
        await conn.run()
    assert not state.connected and "invalid_auth" in (state.last_error or "")
    fake.open_error = None
    wrong, _ = connection(channel(fake, app_token={"env": "X_UNSET", "default": BOT_TOKEN}), deliver, http)
    with pytest.raises(ValueError, match="xapp-"):
        await wrong.run()
    unknown, _ = connection(channel(fake, app_token={"env": "X_UNSET", "default": "xapp-1-other"}), deliver, http)
    with pytest.raises(ConnectionError, match="invalid_auth"):
        await unknown.run()
    fake.refuse_socket = True
    with pytest.raises(SessionEnded, match="HTTP 401"):
        await conn.run()
    assert not state.connected and not fake.links
    fake.refuse_socket = False
    fake.send_hello = False
    conn.hello_timeout_s = 0.2
    with pytest.raises(SessionEnded, match="no hello"):
        await conn.run()
    assert not state.connected
    # a gateway that is not there at all
    gone, state = connection(channel(api_base="http://127.0.0.1:9"), deliver, http)
    with pytest.raises(httpx.ConnectError):
        await gone.run()
    assert not state.connected and state.last_error
    assert not deliver.got


async def test_dropped_and_closed_links_raise(fake: FakeSlackSocket, http: httpx.AsyncClient) -> None:
    deliver = Recorder()
    conn, state = connection(channel(fake), deliver, http)
    for n, end in ((1, "drop"), (2, "close")):
        task = asyncio.create_task(conn.run())
        link = await fake.wait_link(n)
        first = await fake.push(event_callback(message(f"before the {end}")))
        await fake.wait(lambda: fake.acked(first))  # noqa: B023
        assert state.connected
        if end == "drop":
            fake.drop(link)
        else:
            await link.ws.close(code=1011, message=b"server restart")
        failure = await finished(task)
        assert isinstance(failure, SessionEnded) and not state.connected and state.last_error


async def test_pings_are_answered_sent_and_a_silent_link_is_dropped(
    fake: FakeSlackSocket, http: httpx.AsyncClient
) -> None:
    deliver = Recorder()
    conn, state = connection(channel(fake, socket_ping_interval_s=1.0), deliver, http)
    task = asyncio.create_task(conn.run())
    link = await fake.wait_link()
    await fake.ping(b"are-you-there")
    await fake.wait(lambda: b"are-you-there" in link.pongs)  # Slack's pings are answered
    await fake.wait(lambda: len(link.pings) >= 2)  # and ours keep the link alive
    eid = await fake.push(event_callback(message("after the pings")))
    await fake.wait(lambda: fake.acked(eid))
    assert not task.done() and state.connected
    fake.answer_pings = False  # a half-open link: nothing comes back
    failure = await finished(task)
    assert failure is not None and not state.connected and state.last_error


async def test_registered_and_configured(fake: FakeSlackSocket) -> None:
    assert connection_class("slack") is SlackSocketMode
    with pytest.raises(ValidationError, match="app_token"):
        channel(app_token=None)
    with pytest.raises(ValidationError, match="signing_secret"):
        channel(mode="webhook")
    with pytest.raises(ValidationError):
        channel(socket_ping_interval_s=0)
    # stream mode needs no signing secret, and then no webhook request gets in
    ch = channel(fake)
    body, headers = signed(SECRET, event_callback(message("x")))
    with pytest.raises(Rejected) as rej:
        await SlackInbound(ch).receive(HttpRequest("POST", "/v1/webhooks/sl", headers, {}, body, time.time()))
    assert rej.value.status == 401


def test_documented_stream_example_parses() -> None:
    text = (Path(__file__).resolve().parents[3] / "docs" / "channels" / "slack.md").read_text(encoding="utf-8")
    section = text.split("## Stream mode", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    [raw] = yaml.safe_load(block)["channels"]
    ch = SlackChannel.model_validate(raw)
    assert ch.mode == "stream" and ch.app_token is not None and ch.signing_secret is None
