"""The operator API's history reads against fakes of the services' listings and of the event log: what
each endpoint answers, how a conversation key with '/' travels, what is refused, and 503 with the reason
when the service behind is down."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from agentbus.eventlog import Logged
from agentbus.events import (
    Chat,
    MemoryRequested,
    MessageReceived,
    MessageReceivedData,
    ReplyGenerated,
    ReplyGeneratedData,
    Sender,
)
from agentbus.services.ingress.api.history import EgressDeliveries, EventLogTrace, MemoryHistory
from agentbus.services.ingress.api.ports import Page, ReadRefused, Reads, ReadUnavailable
from agentbus.settings import Settings
from agentbus.stack.procs import free_port
from tests.unit.fakes_api import served_api

KEY = "acme/acme-hook/thread/1"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@dataclass
class FakeReads:
    asked: list[tuple[str, ...]] = field(default_factory=list)
    down: bool = False
    chain: list[Logged] = field(default_factory=list)
    window: tuple[datetime, datetime] | None = None
    kept: list[dict[str, Any]] = field(default_factory=list)  # memory's memories

    def _up(self) -> None:
        if self.down:
            raise ReadUnavailable("memory: ConnectError: connection refused")

    async def conversations(self, tenant: str, limit: int, before: str | None) -> Page:
        self._up()
        self.asked.append(("conversations", tenant, str(limit), str(before)))
        if before == "bad":
            raise ReadRefused("before: not a cursor this listing made")
        now = datetime.now(UTC).isoformat()
        return {"items": [{"conversation": KEY, "channel": "acme-hook", "chat": "thread/1", "turns": 2,
                           "first_at": now, "last_at": now}], "next_before": "c2VxOjE"}

    async def turns(self, tenant: str, conversation: str, limit: int, before: str | None) -> Page | None:
        self._up()
        self.asked.append(("turns", tenant, conversation))
        if conversation != KEY:
            return None
        return {"items": [{"event_id": str(uuid.uuid4()), "role": "user", "sender": "u1", "text": "hi",
                           "at": datetime.now(UTC).isoformat(), "correlation_id": str(uuid.uuid4()),
                           "attachments": [{"kind": "image", "ref": "sha256:00"}]}], "next_before": None}

    async def memories(self, tenant: str, conversation: str, limit: int) -> Page:
        self._up()
        self.asked.append(("memories", tenant, conversation, str(limit)))
        return {"items": [m for m in self.kept if m["conversation"] == conversation][:limit], "next_before": None}

    async def memory(self, tenant: str, memory_id: str) -> dict[str, Any] | None:
        self._up()
        self.asked.append(("memory", tenant, memory_id))
        return next((m for m in self.kept if m["id"] == memory_id and m["conversation"].startswith(tenant + "/")),
                    None)

    async def deliveries(self, tenant: str, limit: int, before: str | None, filters: dict[str, str]) -> Page:
        self._up()
        self.asked.append(("deliveries", tenant, *sorted(f"{k}={v}" for k, v in filters.items())))
        return {"items": [], "next_before": None}

    async def inferences(self, tenant: str, limit: int, before: str | None, filters: dict[str, str]) -> Page:
        self._up()
        self.asked.append(("inferences", tenant, *sorted(f"{k}={v}" for k, v in filters.items())))
        return {"items": [], "next_before": None}

    async def usage(self, tenant: str, params: dict[str, str]) -> Page:
        self._up()
        self.asked.append(("usage", tenant, *sorted(f"{k}={v}" for k, v in params.items())))
        rows = [{"start": params["since"], "agent": a, "messages": 2, "prompt_tokens": 10, "completion_tokens": 5,
                 "latency_ms_avg": 12.5, "latency_ms_p95": 20.0} for a in (None, "assistant")]
        return {"items": rows, "next_before": None}

    async def trace(self, tenant: str, wanted: str, since: datetime, until: datetime) -> list[Any] | None:
        self._up()
        self.window = (since, until)
        chain = [lg for lg in self.chain if lg.event.tenant == tenant and str(lg.event.correlation_id) == wanted]
        return chain or None


def reads(fake: FakeReads) -> Reads:
    return Reads(history=fake, deliveries=fake, inferences=fake, trace=fake)


def chain() -> list[Logged]:
    msg = MessageReceived.new(
        MessageReceivedData(channel="acme-hook", channel_type="webhook", agent="assistant", platform_message_id="p1",
                            sender=Sender(id="u1"), chat=Chat(id="thread/1"), text="hi",
                            received_at=datetime.now(UTC)),
        source="ingress", tenant="acme", conversation=KEY)
    reply = msg.follow(ReplyGenerated, ReplyGeneratedData(agent="assistant", channel="acme-hook",
                                                          channel_type="webhook", chat=Chat(id="thread/1"),
                                                          text="hello", model="echo"), source="reasoner", step="reply")
    return [Logged(msg, "t.message.received.v1", 0, 7, {"traceparent": TRACEPARENT}),
            Logged(reply, "t.reply.generated.v2", 2, 3, {"traceparent": TRACEPARENT})]


async def test_conversations_and_turns_with_a_key_holding_slashes() -> None:
    fake = FakeReads()
    async with served_api(reads=reads(fake)) as api:
        viewer = await api.token("acme", "viewer")
        resp = await api.call("GET", "/tenants/acme/conversations?limit=10", viewer)
        assert resp.status_code == 200, resp.text
        assert resp.json()["items"][0]["conversation"] == KEY and resp.json()["next_before"] == "c2VxOjE"
        for path in (KEY, KEY.replace("/", "%2F")):  # plain or escaped, the whole key arrives
            resp = await api.call("GET", f"/tenants/acme/conversations/{path}/turns", viewer)
            assert resp.status_code == 200, resp.text
            [turn] = resp.json()["items"]
            assert (turn["text"], turn["attachments"][0]["ref"]) == ("hi", "sha256:00")
        assert fake.asked[-1] == ("turns", "acme", KEY)
        resp = await api.call("GET", "/tenants/acme/conversations/acme/acme-hook/nobody/turns", viewer)
        assert resp.status_code == 404 and "no conversation" in resp.json()["error"]
        asked = len(fake.asked)
        # a key naming another tenant is not even asked about
        for key in ("globex/globex-hook/x", "acme/only-two", "acme//x"):
            resp = await api.call("GET", f"/tenants/acme/conversations/{key}/turns", viewer)
            assert resp.status_code == 404, (key, resp.text)
        assert len(fake.asked) == asked


async def test_bad_paging_is_a_422_and_a_service_down_a_503_with_the_reason() -> None:
    fake = FakeReads()
    async with served_api(reads=reads(fake)) as api:
        viewer = await api.token("acme", "viewer")
        for query, loc in (("limit=0", "limit"), ("limit=501", "limit"), ("before=no%20spaces", "before"),
                           ("before=bad", "before")):
            resp = await api.call("GET", f"/tenants/acme/conversations?{query}", viewer)
            assert resp.status_code == 422 and loc in resp.json()["error"], (query, resp.text)
        resp = await api.call("GET", "/tenants/acme/deliveries?status=lost", viewer)
        assert resp.status_code == 422 and "status" in resp.json()["error"]
        resp = await api.call("GET", "/tenants/acme/inferences?correlation=nope", viewer)
        assert resp.status_code == 422 and "correlation" in resp.json()["error"]
        fake.down = True
        for path in ("/tenants/acme/conversations", f"/tenants/acme/conversations/{KEY}/turns",
                     "/tenants/acme/deliveries", "/tenants/acme/inferences",
                     f"/tenants/acme/messages/{uuid.uuid4()}/trace"):
            resp = await api.call("GET", path, viewer)
            assert resp.status_code == 503 and "connection refused" in resp.json()["error"], (path, resp.text)
    async with served_api() as api:  # an ingress without the reads wired says so
        viewer = await api.token("acme", "viewer")
        resp = await api.call("GET", "/tenants/acme/deliveries", viewer)
        assert resp.status_code == 503 and "not configured" in resp.json()["error"]


async def test_deliveries_and_inferences_pass_their_filters_on() -> None:
    fake = FakeReads()
    async with served_api(reads=reads(fake)) as api:
        viewer = await api.token("acme", "viewer")
        corr = uuid.uuid4()
        resp = await api.call("GET", f"/tenants/acme/deliveries?status=failed&conversation={KEY}&correlation={corr}",
                              viewer)
        assert resp.status_code == 200 and resp.json() == {"items": [], "next_before": None}
        resp = await api.call("GET", f"/tenants/acme/inferences?correlation={corr}", viewer)
        assert resp.status_code == 200
        assert fake.asked == [("deliveries", "acme", f"conversation={KEY}", f"correlation={corr}", "status=failed"),
                              ("inferences", "acme", f"correlation={corr}")]


async def test_the_trace_lists_the_chain_with_its_trace_id_in_a_bounded_window() -> None:
    fake = FakeReads(chain=chain())
    corr = fake.chain[0].event.correlation_id
    async with served_api(reads=reads(fake)) as api:
        viewer = await api.token("acme", "viewer")
        resp = await api.call("GET", f"/tenants/acme/messages/{corr}/trace", viewer)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["correlation_id"] == str(corr) and body["trace_ids"] == ["0af7651916cd43dd8448eb211c80319c"]
        assert [(e["type"], e["topic"], e["offset"], e["traceparent"]) for e in body["events"]] == [
            ("message.received", "t.message.received.v1", 7, TRACEPARENT),
            ("reply.generated", "t.reply.generated.v2", 3, TRACEPARENT)]
        assert body["events"][1]["causation_id"] == str(fake.chain[0].event.id)
        assert body["events"][1]["data"]["text"] == "hello"
        assert fake.window is not None and fake.window[1] - fake.window[0] == timedelta(hours=24)
        resp = await api.call("GET", f"/tenants/acme/messages/{corr}/trace?window_h=2&until=2030-01-01T00:00:00Z",
                              viewer)
        assert resp.status_code == 200, resp.text
        assert fake.window == (datetime(2029, 12, 31, 22, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC))
        resp = await api.call("GET", f"/tenants/acme/messages/{corr}/trace?window_h=1000", viewer)
        assert resp.status_code == 422 and "window_h" in resp.json()["error"]
        resp = await api.call("GET", "/tenants/acme/messages/not-a-uuid/trace", viewer)
        assert resp.status_code == 422
        globex = await api.token("globex", "viewer")
        resp = await api.call("GET", f"/tenants/globex/messages/{corr}/trace", globex)
        assert resp.status_code == 404 and "no message" in resp.json()["error"]


async def test_the_adapters_say_which_service_is_down() -> None:
    import httpx

    async with httpx.AsyncClient() as http:
        closed = f"http://127.0.0.1:{free_port()}"
        for call in (MemoryHistory(closed, http).conversations("acme", 5, None),
                     EgressDeliveries(closed, http).deliveries("acme", 5, None, {})):
            try:
                await call
            except ReadUnavailable as exc:
                assert str(exc).split(":")[0] in ("memory", "egress")
            else:
                raise AssertionError("no error")
    trace = EventLogTrace(Settings(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}"), timeout_s=2)
    now = datetime.now(UTC)
    try:
        await trace.trace("acme", str(uuid.uuid4()), now - timedelta(hours=1), now)
    except ReadUnavailable as exc:
        assert str(exc).startswith("event log:")
    else:
        raise AssertionError("no error")


def kept(conversation: str, text: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "text": text, "role": "user", "kind": "turn", "at": datetime.now(UTC).isoformat(),
            "conversation": conversation, "sender": "u1", "sender_name": None, "channel": "acme-hook",
            "chat": "thread/1", "chat_name": None, "chat_type": "direct"}


async def test_a_conversations_memories_are_listed_and_one_is_forgotten_by_a_command_once() -> None:
    fake = FakeReads()
    mine, other = kept(KEY, "my locker is 12"), kept("globex/globex-hook/x", "globex's")
    fake.kept = [mine, other]
    async with served_api(reads=reads(fake)) as api:
        viewer, operator = await api.token("acme", "viewer"), await api.token("acme", "operator")
        resp = await api.call("GET", f"/tenants/acme/conversations/{KEY}/memories?limit=5", viewer)
        assert resp.status_code == 200 and [m["text"] for m in resp.json()["items"]] == ["my locker is 12"]
        assert fake.asked[-1] == ("memories", "acme", KEY, "5")
        resp = await api.call("GET", "/tenants/acme/conversations/globex/globex-hook/x/memories", viewer)
        assert resp.status_code == 404 and fake.asked[-1][0] == "memories"  # another tenant's key: not asked

        forget = f"/tenants/acme/memories/{mine['id']}/forget"
        resp = await api.call("POST", forget, viewer)
        assert resp.status_code == 403 and "operator" in resp.json()["error"]
        resp = await api.call("POST", "/tenants/acme/memories/not-an-id/forget", operator)
        assert resp.status_code == 422 and "memory_id" in resp.json()["error"]
        resp = await api.call("POST", f"/tenants/acme/memories/{other['id']}/forget", operator)  # globex's
        assert resp.status_code == 404 and "no memory" in resp.json()["error"]
        assert not [e for e in api.publisher.published if isinstance(e, MemoryRequested)]
        first = await api.call("POST", forget, operator)
        again = await api.call("POST", forget, operator)
        assert first.status_code == again.status_code == 202, first.text
        assert first.json()["command_id"] == again.json()["command_id"] and first.json()["conversation"] == KEY
        commands = [e for e in api.publisher.published if isinstance(e, MemoryRequested)]
        assert {str(c.id) for c in commands} == {first.json()["command_id"]}  # one command, asked twice
        c = commands[0]
        assert (c.tenant, c.conversation, c.data.action, str(c.data.memory_id), c.data.min_score) == (
            "acme", KEY, "forget", mine["id"], 1.0)
        assert "my locker" not in c.data.text, "the forgotten text is not copied into the log"
        audits = [a for a in api.publisher.audits() if a.data.action == "memories.forget"]
        assert [a.data.outcome for a in audits] == ["denied", "ok", "ok"]  # the viewer's, then each request's
        assert [a.data.target for a in audits if a.data.outcome == "ok"] == [mine["id"]] * 2
        fake.down = True
        resp = await api.call("POST", forget, operator)
        assert resp.status_code == 503 and "connection refused" in resp.json()["error"]


async def test_usage_is_asked_of_the_reasoner_for_a_checked_window() -> None:
    fake = FakeReads()
    async with served_api(reads=reads(fake)) as api:
        viewer = await api.token("acme", "viewer")
        resp = await api.call("GET", "/tenants/acme/usage?bucket=day&since=2026-01-01T00:00:00Z"
                                     "&until=2026-01-31T00:00:00Z&agent=assistant", viewer)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["agents"] == ["assistant"] and [i["agent"] for i in body["items"]] == [None, "assistant"]
        assert fake.asked[-1] == ("usage", "acme", "agent=assistant", "bucket=day", "since=2026-01-01T00:00:00+00:00",
                                  "until=2026-01-31T00:00:00+00:00")
        resp = await api.call("GET", "/tenants/acme/usage", viewer)  # the last day, by hour
        since, until = (datetime.fromisoformat(resp.json()[k]) for k in ("since", "until"))
        assert resp.json()["bucket"] == "hour" and until - since == timedelta(hours=24)
        asked = len(fake.asked)
        for query, reason in (("bucket=week", "bucket"), ("since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
                                                            "must be before until"),
                              ("bucket=hour&since=2025-01-01T00:00:00Z&until=2026-01-01T00:00:00Z", "at most 744"),
                              ("agent=no%20spaces", "agent"), ("since=yesterday", "since")):
            resp = await api.call("GET", f"/tenants/acme/usage?{query}", viewer)
            assert resp.status_code == 422 and reason in resp.json()["error"], (query, resp.text)
        assert len(fake.asked) == asked  # nothing refused reaches the reasoner
        assert (await api.call("GET", "/tenants/globex/usage", viewer)).status_code == 404
        fake.down = True
        resp = await api.call("GET", "/tenants/acme/usage", viewer)
        assert resp.status_code == 503 and "connection refused" in resp.json()["error"]
