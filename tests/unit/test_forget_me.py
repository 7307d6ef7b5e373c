"""A person's "forget everything about me" in chat, through the acceptor with fakes: asked, answered by
ingress itself (not remembered), confirmed with its own phrase in the same chat within the window, and only
then the erasure command and its audit published before the answer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from agentbus.channeltypes import WebhookChannel
from agentbus.events import AuditRecorded, Chat, MessageReceived, Sender, UserErasureRequested
from agentbus.services.ingress.accept import Acceptor
from agentbus.services.ingress.forgetme import ForgetMe, normal
from agentbus.services.ingress.inbound import Inbound, InboundMessage
from tests.unit.fakes_ingress import FakeDedupe, FakePublisher

CHANNEL = WebhookChannel(id="hook", type="webhook", tenant="acme", agent="a",
                         secret={"env": "X", "default": "whsec_eA=="})


@dataclass
class FakeConfirmations:
    asked: dict[tuple[str, str], tuple[str, str, float]] = field(default_factory=dict)
    now: float = 0.0

    async def ask(self, tenant: str, user: str, channel: str, chat: str) -> None:
        self.asked[(tenant, user)] = (channel, chat, self.now)

    async def take(self, tenant: str, user: str, channel: str, chat: str, within_s: float) -> bool:
        found = self.asked.pop((tenant, user), None)
        return found is not None and found[:2] == (channel, chat) and self.now - found[2] < within_s


def said(text: str, user: str = "u1", chat: str = "c1") -> Inbound:
    return Inbound(message=InboundMessage(platform_message_id=uuid.uuid4().hex, sender=Sender(id=user, name="Ann"),
                                          chat=Chat(id=chat), text=text), dedupe_id=uuid.uuid4().hex)


def setup() -> tuple[Acceptor, FakePublisher, FakeConfirmations]:
    publisher, pending = FakePublisher(), FakeConfirmations()
    return Acceptor(FakeDedupe(), publisher, erasures=ForgetMe(pending, window_s=600)), publisher, pending


async def test_asked_then_confirmed_publishes_the_erasure_and_its_audit_before_the_answer() -> None:
    a, publisher, pending = setup()
    await a.accept(CHANNEL, said("Forget everything about me!"))
    [question] = publisher.published
    assert isinstance(question, MessageReceived) and question.data.refusal is not None
    assert '"yes, forget me"' in question.data.refusal  # answered without the model, and not remembered
    assert ("acme", "u1") in pending.asked
    publisher.published.clear()
    await a.accept(CHANNEL, said("Yes, forget me."))
    command, audit, answer = publisher.published
    assert isinstance(command, UserErasureRequested) and isinstance(audit, AuditRecorded)
    assert (command.tenant, command.data.user, command.data.requested_by) == ("acme", "u1", "user:u1")
    assert (audit.data.actor, audit.data.action, audit.data.target) == ("user:u1", "users.forget", "u1")
    assert isinstance(answer, MessageReceived) and answer.data.refusal == "Done: I have forgotten everything about you."
    assert pending.asked == {}


async def test_only_the_confirmation_phrase_in_the_same_chat_within_the_window_erases() -> None:
    a, publisher, pending = setup()
    for text in ("yes, forget me", "yes"):  # nothing asked: ordinary messages
        await a.accept(CHANNEL, said(text))
    assert [e.data.refusal for e in publisher.published] == [None, None]
    publisher.published.clear()
    await a.accept(CHANNEL, said("忘记关于我的一切"))
    assert "确认忘记" in (publisher.published[-1].data.refusal or "")
    await a.accept(CHANNEL, said("yes"))  # a bare yes is an ordinary message, and the question stays
    assert publisher.published[-1].data.refusal is None and ("acme", "u1") in pending.asked
    await a.accept(CHANNEL, said("确认忘记", user="u2"))  # somebody else confirming: nothing of theirs was asked
    await a.accept(CHANNEL, said("yes, forget me", chat="elsewhere"))  # another chat: the question is dropped
    assert not any(isinstance(e, UserErasureRequested) for e in publisher.published)
    await a.accept(CHANNEL, said("forget me"))
    pending.now = 601.0  # too late
    await a.accept(CHANNEL, said("确认忘记"))
    assert not any(isinstance(e, UserErasureRequested) for e in publisher.published)
    await a.accept(CHANNEL, said("@assistant forget me"))  # with a mention, in a group
    await a.accept(CHANNEL, said("确认忘记"))
    assert [e.data.user for e in publisher.published if isinstance(e, UserErasureRequested)] == ["u1"]
    assert publisher.published[-1].data.refusal == "好的，关于你的一切我都已忘记。"


def test_the_phrases_ignore_case_mentions_and_punctuation() -> None:
    assert normal("  @bot Forget   everything about ME?! ") == "forget everything about me"
    assert normal("「确认忘记」。") == "确认忘记"
