"""Accepting a message against in-memory fakes: published once, duplicates, policy, the store down."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from structlog.testing import capture_logs

from agentbus.channeltypes import WebhookChannel
from agentbus.events import Chat, Event, MessageReceived, Sender
from agentbus.ids import derive_id
from agentbus.services.ingress.accept import Acceptor
from agentbus.services.ingress.inbound import Inbound, InboundMessage
from tests.unit.fakes_ingress import FakeDedupe, FakePublisher

CHANNEL = WebhookChannel(id="hook", type="webhook", tenant="acme", agent="a",
                         secret={"env": "X", "default": "whsec_eA=="})


def inbound(chat_type: str = "direct", mentioned: bool = False, dedupe_id: str | None = "evt-1") -> Inbound:
    msg = InboundMessage(platform_message_id="pm-1", sender=Sender(id="u1"),
                         chat=Chat.model_validate({"id": "c/1", "type": chat_type}), text="hello",
                         mentioned_bot=mentioned)
    return Inbound(message=msg, dedupe_id=dedupe_id)


def acceptor(dedupe: FakeDedupe | None = None) -> tuple[Acceptor, FakeDedupe, FakePublisher]:
    dedupe, publisher = dedupe or FakeDedupe(), FakePublisher()
    return Acceptor(dedupe, publisher), dedupe, publisher


async def test_a_message_is_published_once_with_its_derived_id_and_recorded() -> None:
    a, dedupe, publisher = acceptor()
    outcome = await a.accept(CHANNEL, inbound())
    [event] = publisher.published
    assert isinstance(event, MessageReceived)
    # the id formula is part of the contract: a platform retry must get the same id
    assert outcome.status == "published" and outcome.event_id == event.id == derive_id("hook:evt-1",
                                                                                       "message.received")
    assert event.conversation == "acme/hook/c/1" and event.tenant == "acme" and event.data.text == "hello"
    assert dedupe.rows == {("hook", "evt-1"): event.id}


async def test_a_platform_retry_is_a_duplicate_and_not_published_again() -> None:
    a, _, publisher = acceptor()
    first = await a.accept(CHANNEL, inbound())
    again = await a.accept(CHANNEL, inbound())
    assert (again.status, again.event_id) == ("duplicate", first.event_id)
    assert len(publisher.published) == 1


async def test_without_a_platform_event_id_the_message_id_deduplicates() -> None:
    a, dedupe, _ = acceptor()
    await a.accept(CHANNEL, inbound(dedupe_id=None))
    assert list(dedupe.rows) == [("hook", "pm-1")]


async def test_a_group_message_without_a_mention_is_ignored() -> None:
    a, dedupe, publisher = acceptor()
    outcome = await a.accept(CHANNEL, inbound(chat_type="group"))
    assert (outcome.status, outcome.reason) == ("ignored", "group message without a mention")
    assert publisher.published == [] and dedupe.rows == {}
    assert (await a.accept(CHANNEL, inbound(chat_type="group", mentioned=True))).status == "published"


async def test_a_request_without_a_message_is_ignored_with_its_note() -> None:
    a, _, publisher = acceptor()
    outcome = await a.accept(CHANNEL, Inbound(note="url verification"))
    assert (outcome.status, outcome.reason) == ("ignored", "url verification")
    assert publisher.published == []


async def test_the_dedupe_store_down_does_not_block_publishing() -> None:
    a, _, publisher = acceptor(FakeDedupe(down=True))
    with capture_logs() as logs:
        outcome = await a.accept(CHANNEL, inbound())
    assert outcome.status == "published" and len(publisher.published) == 1
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["dedupe_unavailable", "dedupe_record_failed"]


async def test_a_publish_that_fails_is_not_recorded() -> None:
    class Down(FakePublisher):
        async def publish(self, events: Sequence[Event]) -> None:
            raise ConnectionError("broker away")

    dedupe = FakeDedupe()
    a = Acceptor(dedupe, Down())
    with pytest.raises(ConnectionError):
        await a.accept(CHANNEL, inbound())
    assert dedupe.rows == {}


class GatedPublisher(FakePublisher):
    """Publishes only once ``gate`` opens; ``fail`` makes the first publish raise."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        self.fail = fail
        self.calls = 0

    async def publish(self, events: Sequence[Event]) -> None:
        self.calls += 1
        self.entered.set()
        await self.gate.wait()
        if self.fail and self.calls == 1:
            raise ConnectionError("broker unavailable")
        await super().publish(events)


async def test_the_same_event_handled_twice_at_once_is_published_once() -> None:
    publisher = GatedPublisher()
    a = Acceptor(FakeDedupe(), publisher)
    first = asyncio.create_task(a.accept(CHANNEL, inbound()))
    await publisher.entered.wait()  # the first copy is being published, not yet recorded
    second = asyncio.create_task(a.accept(CHANNEL, inbound()))
    other = asyncio.create_task(a.accept(CHANNEL, inbound(dedupe_id="evt-2")))  # another event is not held up
    await asyncio.sleep(0)
    publisher.gate.set()
    one, two, three = await asyncio.gather(first, second, other)
    assert (one.status, two.status, three.status) == ("published", "duplicate", "published")
    assert one.event_id == two.event_id and publisher.calls == 2 and len(publisher.published) == 2


async def test_when_the_first_copy_fails_the_second_is_accepted_on_its_own() -> None:
    publisher = GatedPublisher(fail=True)
    a = Acceptor(FakeDedupe(), publisher)
    first = asyncio.create_task(a.accept(CHANNEL, inbound()))
    await publisher.entered.wait()
    second = asyncio.create_task(a.accept(CHANNEL, inbound()))
    await asyncio.sleep(0)
    publisher.gate.set()
    with pytest.raises(ConnectionError):
        await first
    assert (await second).status == "published" and len(publisher.published) == 1
