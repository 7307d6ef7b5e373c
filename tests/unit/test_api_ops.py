"""Dead letters and replay runs through the operator API against fakes of the event log: what each endpoint
answers, what it publishes or redrives, and what it refuses."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from aiokafka.structs import ConsumerRecord

from agentbus.bus.deadletter import dead_letter_event
from agentbus.deadletters import Letter
from agentbus.eventlog import Filter
from agentbus.events import (
    AuditRecorded,
    Chat,
    DeliveryCompleted,
    DeliveryCompletedData,
    Event,
    MessageReceived,
    MessageReceivedData,
    Replay,
    ReplayRequested,
    ReplaySelected,
    ReplyGenerated,
    ReplyGeneratedData,
    Sender,
    utcnow,
)
from agentbus.ids import reply_id
from agentbus.replayruns import Originals
from agentbus.services.ingress.api.eventlog import LogUnavailable, RunEvents
from agentbus.services.ingress.api.replay_runner import select_replay
from tests.unit.fakes_api import Api, served_api


def message(tenant: str, chat: str, text: str) -> MessageReceived:
    return MessageReceived.new(
        MessageReceivedData(channel=f"{tenant}-hook", channel_type="webhook", agent="assistant",
                            platform_message_id=uuid.uuid4().hex, sender=Sender(id="u"), chat=Chat(id=chat),
                            text=text, received_at=utcnow()),
        source="ingress", tenant=tenant, conversation=f"{tenant}/{tenant}-hook/{chat}")


def letter(tenant: str, offset: int, service: str = "memory") -> Letter:
    ev = message(tenant, f"chat-{offset}", "hello")
    rec = ConsumerRecord("agentbus.message.received.v1", 0, offset, 0, 0, ev.conversation.encode(), ev.to_bytes(),
                         None, 0, 0, [("event-id", str(ev.id).encode())])
    return Letter(0, offset, dead_letter_event(service, rec, ev, ValueError("boom"), 5))


@dataclass
class FakeDeadLetters:
    rows: list[Letter] = field(default_factory=list)
    redriven: list[Letter] = field(default_factory=list)
    down: bool = False

    async def letters(self) -> list[Letter]:
        if self.down:
            raise LogUnavailable("dead letters: TimeoutError")
        return list(self.rows)

    async def redrive(self, x: Letter) -> None:
        self.redriven.append(x)


@dataclass
class FakeReplays:
    """The log as a list of events; a run's events are found as ``LogReplays`` finds them."""

    events: list[Event] = field(default_factory=list)
    originals_: Originals = field(default_factory=Originals)

    async def run(self, run: str) -> RunEvents:
        out = RunEvents()
        for e in self.events:
            if isinstance(e, ReplayRequested) and e.data.run == run:
                out.request = e
            elif isinstance(e, ReplaySelected) and e.data.run == run:
                out.selection = e
            elif e.replay is not None and e.replay.run == run:
                out.produced.append(e)
        return out

    async def originals(self) -> Originals:
        return self.originals_


def with_ops(api: Api) -> tuple[FakeDeadLetters, FakeReplays]:
    letters, replays = FakeDeadLetters(), FakeReplays()
    api.app.state.deps.dead_letters, api.app.state.deps.replays = letters, replays
    return letters, replays


async def test_dead_letters_are_listed_per_tenant_newest_first_with_filters() -> None:
    async with served_api() as api:
        letters, _ = with_ops(api)
        letters.rows = [letter("acme", 1), letter("globex", 2), letter("acme", 3, service="egress")]
        viewer = await api.token("acme", "viewer")
        listed = (await api.call("GET", "/tenants/acme/dead-letters", viewer)).json()
        assert [x["id"] for x in listed] == [letters.rows[2].id, letters.rows[0].id]
        assert listed[1]["service"] == "memory" and listed[1]["error"] == "boom" and listed[1]["attempts"] == 5
        one = (await api.call("GET", "/tenants/acme/dead-letters", viewer, params={"limit": 1})).json()
        assert [x["id"] for x in one] == [letters.rows[2].id]
        by_service = (await api.call("GET", "/tenants/acme/dead-letters", viewer, params={"service": "memory"})).json()
        assert [x["id"] for x in by_service] == [letters.rows[0].id]
        assert (await api.call("GET", "/tenants/acme/dead-letters", viewer,
                               params={"type": "reply.generated"})).json() == []
        assert len((await api.call("GET", "/tenants/acme/dead-letters", viewer, params={
            "topic": "agentbus.message.received.v1", "type": "message.received"})).json()) == 2
        detail = (await api.call("GET", f"/tenants/acme/dead-letters/{letters.rows[0].id}", viewer)).json()
        assert detail["original_headers"]["event-id"] == letters.rows[0].event.data.original_id
        # another tenant's letter under our own tenant is as absent as an unknown one
        assert (await api.call("GET", f"/tenants/acme/dead-letters/{letters.rows[1].id}", viewer)).status_code == 404
        assert (await api.call("GET", "/tenants/acme/dead-letters/not-a-uuid", viewer)).status_code == 422
        assert (await api.call("GET", "/tenants/acme/dead-letters", viewer, params={"limit": 0})).status_code == 422
        letters.down = True
        assert (await api.call("GET", "/tenants/acme/dead-letters", viewer)).status_code == 503


async def test_an_operator_redrives_its_tenants_letter_and_the_redrive_is_audited() -> None:
    async with served_api() as api:
        letters, _ = with_ops(api)
        mine, theirs = letter("acme", 1), letter("globex", 2)
        letters.rows = [mine, theirs]
        viewer, op = await api.token("acme", "viewer"), await api.token("acme", "operator", name="ops")
        resp = await api.call("POST", f"/tenants/acme/dead-letters/{mine.id}/redrive", viewer)
        assert resp.status_code == 403 and not letters.redriven
        resp = await api.call("POST", f"/tenants/acme/dead-letters/{theirs.id}/redrive", op)
        assert resp.status_code == 404 and not letters.redriven
        resp = await api.call("POST", f"/tenants/acme/dead-letters/{mine.id}/redrive", op)
        assert resp.status_code == 202, resp.text
        assert resp.json() == {"id": mine.id, "original_topic": "agentbus.message.received.v1",
                               "original_id": mine.event.data.original_id}
        assert letters.redriven == [mine]
        [audit] = [e for e in api.publisher.audits() if e.data.outcome == "ok"]
        assert (audit.data.action, audit.data.target, audit.data.tenant, audit.data.actor_name) == (
            "dead_letter.redrive", mine.id, "acme", "ops")


async def test_starting_a_replay_publishes_its_command_for_the_paths_tenant() -> None:
    async with served_api() as api:
        with_ops(api)
        op = await api.token("acme", "operator")
        before = utcnow()
        resp = await api.call("POST", "/tenants/acme/replays", op, json={
            "from": "message", "conversation": "team", "rerun_llm": True, "model": "echo", "limit": 5})
        assert resp.status_code == 202, resp.text
        cmd, audit = api.publisher.published
        assert isinstance(cmd, ReplayRequested) and isinstance(audit, AuditRecorded)
        body = resp.json()
        assert body == {"run": cmd.data.run, "command_id": str(cmd.id), "status": "selecting"}
        d = cmd.data
        assert (cmd.tenant, d.entry_type, d.conversation, d.rerun_llm, d.model, d.limit) == (
            "acme", "message.received", "team", True, "echo", 5)
        assert d.until >= before, "until is fixed when the run is asked for"
        assert (audit.data.action, audit.data.target, audit.data.outcome) == ("replay.start", d.run, "ok")


async def test_bad_replay_input_is_a_422_and_publishes_nothing() -> None:
    async with served_api() as api:
        with_ops(api)
        op, viewer = await api.token("acme", "operator"), await api.token("acme", "viewer")
        for bad in ({"model": "echo"}, {"from": "somewhere"}, {"limit": 0}, {"limit": 5000}, {"tenant": "globex"},
                    {"rerun_llm": True, "model": "nobody"}, {"since": "2030-01-02T00:00:00Z",
                                                            "until": "2030-01-01T00:00:00Z"},
                    {"correlation": "nope"}, {"conversation": "a\x00b"}):
            resp = await api.call("POST", "/tenants/acme/replays", op, json=bad)
            assert resp.status_code == 422, (bad, resp.text)
            assert resp.json()["error"]
        assert (await api.call("POST", "/tenants/acme/replays", viewer, json={})).status_code == 403
        assert not [e for e in api.publisher.published if not isinstance(e, AuditRecorded)]


class Entries:
    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.asked: list[tuple[str, Filter, int]] = []

    async def select(self, entry_type: str, keep: Filter, limit: int) -> tuple[list[Event], bool, int]:
        self.asked.append((entry_type, keep, limit))
        matched = [e for e in self.events if e.TYPE == entry_type and keep(e)]
        return matched[:limit], len(matched) > limit, 0


def reply_to(entry: MessageReceived, text: str, replay: Replay | None) -> tuple[ReplyGenerated, DeliveryCompleted]:
    rid = reply_id(entry.id, entry.TYPE)
    d = entry.data
    reply = ReplyGenerated.new(ReplyGeneratedData(agent="assistant", channel=d.channel, channel_type=d.channel_type,
                                                  chat=d.chat, text=text, model="echo"),
                               source="reasoner", tenant=entry.tenant, conversation=entry.conversation, id=rid,
                               replay=replay)
    delivery = DeliveryCompleted.new(DeliveryCompletedData(reply_id=rid, channel=d.channel,
                                                           channel_type=d.channel_type,
                                                           status="suppressed" if replay else "delivered"),
                                     source="egress", tenant=entry.tenant, conversation=entry.conversation,
                                     replay=replay)
    return reply, delivery


async def test_a_run_is_selected_republished_and_reported_beside_the_originals() -> None:
    async with served_api() as api:
        _, replays = with_ops(api)
        op = await api.token("acme", "operator")
        first, second, other = message("acme", "team", "one"), message("acme", "team", "two"), message(
            "globex", "x", "theirs")
        resp = await api.call("POST", "/tenants/acme/replays", op, json={"from": "message", "limit": 1})
        later = message("acme", "team", "after the run was asked for")
        run = resp.json()["run"]
        [cmd] = [e for e in api.publisher.published if isinstance(e, ReplayRequested)]
        replays.events.append(cmd)
        status = (await api.call("GET", f"/tenants/acme/replays/{run}", op)).json()
        assert (status["status"], status["selected"]) == ("selecting", None)

        entries = Entries([other, first, second, later])
        out = await select_replay(cmd, entries)
        keep = entries.asked[0][1]
        assert keep.tenant == "acme" and not keep(later) and not keep(other) and keep(second)
        selected, *copies = out
        assert isinstance(selected, ReplaySelected) and selected.data.truncated
        assert [e.id for e in copies] == [first.id] and copies[0].replay and copies[0].replay.run == run
        assert out == await select_replay(cmd, entries), "handled again, the same outputs"
        replays.events += out
        status = (await api.call("GET", f"/tenants/acme/replays/{run}", op)).json()
        assert (status["status"], status["selected"], status["finished"], status["truncated"]) == (
            "running", 1, 0, True)

        live_reply, _ = reply_to(first, "the live answer", None)
        replays.originals_.add(live_reply)
        replays.events += reply_to(first, "the replayed answer", copies[0].replay)
        status = (await api.call("GET", f"/tenants/acme/replays/{run}", op)).json()
        assert (status["status"], status["replayed"], status["finished"]) == ("done", 1, 1)
        report = (await api.call("GET", f"/tenants/acme/replays/{run}/report", op)).json()
        [row] = report["messages"]
        assert (row["entry_id"], row["original"], row["replayed"], row["changed"], row["delivery"]) == (
            str(first.id), "the live answer", "the replayed answer", True, "suppressed")
        assert (report["changed"], report["pushed_to_channels"]) == (1, 0)

        globex = await api.token("globex", "admin")
        assert (await api.call("GET", f"/tenants/globex/replays/{run}", globex)).status_code == 404
        assert (await api.call("GET", "/tenants/acme/replays/replay-unknown", op)).status_code == 404
        assert (await api.call("GET", "/tenants/acme/replays/bad%20id", op)).status_code == 422


async def test_a_replay_with_nothing_to_select_is_done_at_once() -> None:
    async with served_api() as api:
        _, replays = with_ops(api)
        op = await api.token("acme", "operator")
        run: Any = (await api.call("POST", "/tenants/acme/replays", op, json={})).json()["run"]
        [cmd] = [e for e in api.publisher.published if isinstance(e, ReplayRequested)]
        replays.events += [cmd, *await select_replay(cmd, Entries([]))]
        status = (await api.call("GET", f"/tenants/acme/replays/{run}", op)).json()
        assert (status["status"], status["selected"]) == ("done", 0)
