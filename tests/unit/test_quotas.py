"""Per-tenant quotas against fakes: messages per minute in the acceptor (after de-duplication, nothing
published when over), and LLM tokens per day in the reasoner (counted once per inference, the budget text
instead of a model call once used up)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest

from agentbus.config import ConfigError, parse_config
from agentbus.events import Chat, ContextAssembled, ContextAssembledData, InferenceCompleted, Sender, Turn, utcnow
from agentbus.quota_metrics import QUOTA_REFUSED, QUOTA_TOKENS_USED
from agentbus.services.ingress.accept import Acceptor
from agentbus.services.ingress.ports import Verdict
from agentbus.services.ingress.quota import MessageQuota
from agentbus.services.reasoner.budget import TokenBudget
from agentbus.services.reasoner.handlers import Reasoner
from agentbus.settings import Settings
from tests.support.platform import base_config
from tests.unit.fakes_ingress import FakeDedupe, FakePublisher
from tests.unit.fakes_reasoner import FakeInferenceLedger, ScriptedLLM
from tests.unit.test_ingress_accept import CHANNEL, inbound


def config(**quotas: Any) -> Any:
    raw = base_config(tenants=("acme", "globex"))
    raw["tenants"][0]["quotas"] = quotas
    return parse_config(raw)


@dataclass
class FakeWindow:
    """The sliding window on a clock the test sets."""

    now: float = 1000.0
    grants: dict[str, list[float]] = field(default_factory=dict)
    down: bool = False

    async def admit(self, key: str, limit: int, window_s: float) -> Verdict:
        if self.down:
            raise ConnectionError("database away")
        kept = sorted(g for g in self.grants.get(key, []) if g > self.now - window_s)
        if len(kept) >= limit:
            return Verdict(False, kept[len(kept) - limit] + window_s - self.now)
        self.grants[key] = [*kept, self.now]
        return Verdict(True)


def refused(tenant: str, quota: str) -> float:
    return QUOTA_REFUSED.labels(tenant=tenant, quota=quota)._value.get()  # type: ignore[no-any-return]


async def test_over_the_quota_nothing_is_published_and_a_retry_of_a_published_message_stays_a_duplicate() -> None:
    window = FakeWindow()
    quota = MessageQuota(config(messages_per_minute=2), window)
    dedupe, publisher = FakeDedupe(), FakePublisher()
    a = Acceptor(dedupe, publisher, quota=quota)
    before = refused("acme", "messages_per_minute")
    assert (await a.accept(CHANNEL, inbound(dedupe_id="e1"))).status == "published"
    window.now += 10
    assert (await a.accept(CHANNEL, inbound(dedupe_id="e2"))).status == "published"
    window.now += 5
    over = await a.accept(CHANNEL, inbound(dedupe_id="e3"))
    assert over.status == "over_quota" and over.retry_after_s == pytest.approx(45.0)
    assert len(publisher.published) == 2 and ("hook", "e3") not in dedupe.rows
    assert refused("acme", "messages_per_minute") == before + 1
    # the platform retries e1 while the tenant is over: a duplicate, not a refusal
    assert (await a.accept(CHANNEL, inbound(dedupe_id="e1"))).status == "duplicate"
    # after the first grant leaves the window, the retry of e3 is published, once
    window.now += 46
    assert (await a.accept(CHANNEL, inbound(dedupe_id="e3"))).status == "published"
    assert (await a.accept(CHANNEL, inbound(dedupe_id="e3"))).status == "duplicate"
    assert len(publisher.published) == 3


async def test_tenants_without_a_quota_are_never_counted_and_a_window_that_is_away_admits() -> None:
    window = FakeWindow()
    quota = MessageQuota(config(messages_per_minute=1), window)
    assert all([(await quota.admit("globex")).admitted for _ in range(5)]) and "globex" not in window.grants
    window.down = True
    assert (await quota.admit("acme")).admitted


def test_quotas_are_validated_and_api_channels_are_unique_per_tenant_and_agent() -> None:
    with pytest.raises(ConfigError, match=r"tenants\[0\].quotas.messages_per_minute"):
        config(messages_per_minute=0)
    with pytest.raises(ConfigError, match=r"tenants\[0\].quotas.per_hour"):
        config(per_hour=3)
    raw = base_config(tenants=("acme",))
    raw["channels"] += [{"id": "c1", "type": "api", "tenant": "acme", "agent": "assistant"},
                        {"id": "c2", "type": "api", "tenant": "acme", "agent": "assistant"}]
    with pytest.raises(ConfigError, match=r"channels\[2\].agent: tenant 'acme' already has an api channel"):
        parse_config(raw)


@dataclass
class FakeUsage:
    days: dict[tuple[str, date], int] = field(default_factory=dict)
    counted: set[uuid.UUID] = field(default_factory=set)
    fail_adds: int = 0

    async def used(self, tenant: str, day: date) -> int:
        return self.days.get((tenant, day), 0)

    async def add(self, inference_id: uuid.UUID, tenant: str, day: date, tokens: int) -> int:
        if self.fail_adds:
            self.fail_adds -= 1
            raise ConnectionError("database away")
        if inference_id not in self.counted:
            self.counted.add(inference_id)
            self.days[(tenant, day)] = self.days.get((tenant, day), 0) + tokens
        return self.days[(tenant, day)]


def context(text: str, tenant: str = "acme") -> ContextAssembled:
    return ContextAssembled.new(
        ContextAssembledData(agent="assistant", channel=tenant, channel_type="webhook", chat=Chat(id="c"),
                             trigger="message", input=Turn(role="user", text=text, at=utcnow()),
                             asker=Sender(id="u")),
        source="memory", tenant=tenant, conversation=f"{tenant}/{tenant}/c")


async def test_the_days_tokens_are_counted_once_and_then_the_budget_text_answers_without_the_model() -> None:
    cfg = config(llm_tokens_per_day=10, budget_used_up_text="Budget gone for today.")
    usage, llm, ledger = FakeUsage(), ScriptedLLM(), FakeInferenceLedger()
    r = Reasoner(cfg, Settings(), ledger, llm, budget=TokenBudget(cfg, usage))
    first = context("one two three")
    inf, _ = await r.answer(first)
    assert isinstance(inf, InferenceCompleted)
    spent = (inf.data.usage.input_tokens or 0) + (inf.data.usage.output_tokens or 0)
    today = utcnow().date()
    assert spent > 0 and usage.days[("acme", today)] == spent
    await r.answer(first)  # a redelivery: answered from the ledger, not counted again
    assert usage.days[("acme", today)] == spent and llm.calls == 1
    while usage.days[("acme", today)] < 10:
        await r.answer(context(f"more {usage.days[('acme', today)]}"))
    calls, before = llm.calls, refused("acme", "llm_tokens_per_day")
    inf, reply = await r.answer(context("and now?"))
    assert reply.data.text == "Budget gone for today." and llm.calls == calls
    assert inf.data.model == "budget" and inf.data.usage.input_tokens is None
    assert refused("acme", "llm_tokens_per_day") == before + 1
    assert QUOTA_TOKENS_USED.labels(tenant="acme")._value.get() == usage.days[("acme", today)]
    # another tenant has no limit: answered by the model, and not counted
    _, other = await r.answer(context("hello", tenant="globex"))
    assert other.data.text == "reply to hello" and ("globex", today) not in usage.days


async def test_a_count_that_failed_is_made_on_the_redelivery() -> None:
    cfg = config(llm_tokens_per_day=1000)
    usage, llm, ledger = FakeUsage(fail_adds=1), ScriptedLLM(), FakeInferenceLedger()
    r = Reasoner(cfg, Settings(), ledger, llm, budget=TokenBudget(cfg, usage))
    e = context("count me")
    with pytest.raises(ConnectionError):
        await r.answer(e)
    assert usage.days == {}
    inf, _ = await r.answer(e)  # the consumer retries: the recorded outputs are counted now
    assert llm.calls == 1 and usage.days[("acme", utcnow().date())] == (
        (inf.data.usage.input_tokens or 0) + (inf.data.usage.output_tokens or 0))


async def test_a_long_connection_event_over_the_quota_is_acknowledged_and_dropped() -> None:
    """``deliver`` returns (the connection acknowledges the event) rather than raising (redelivery): an
    unacknowledged event comes straight back on some platforms (Telegram's next getUpdates) and is given up
    after a few tries on others, so only dropping it, counted, sheds the load predictably."""
    from agentbus import metrics
    from agentbus.services.ingress.longconn.base import LinkState
    from agentbus.services.ingress.longconn.wiring import delivering

    window = FakeWindow()
    publisher = FakePublisher()
    a = Acceptor(FakeDedupe(), publisher, quota=MessageQuota(config(messages_per_minute=1), window))
    deliver = delivering(a, CHANNEL, LinkState())
    counter = metrics.STREAM_EVENTS.labels(channel=CHANNEL.id, outcome="over_quota")
    before = counter._value.get()
    assert (await deliver(inbound(dedupe_id="s1"))).status == "published"
    assert (await deliver(inbound(dedupe_id="s2"))).status == "over_quota"
    assert len(publisher.published) == 1 and counter._value.get() == before + 1


def test_a_job_cannot_target_an_api_channel() -> None:
    raw = base_config(tenants=("acme",))
    raw["channels"].append({"id": "chat", "type": "api", "tenant": "acme", "agent": "assistant"})
    raw["jobs"] = [{"id": "daily", "every_s": 60, "channel": "chat", "chat": "c", "prompt": "p"}]
    with pytest.raises(ConfigError, match=r"jobs\[0\].channel: 'chat' is an api channel"):
        parse_config(raw)
