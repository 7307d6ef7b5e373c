"""Egress's adapters and fakes implement its ports, so a drift on either side fails here."""

from __future__ import annotations

import pytest

from agentbus.services.egress.channels import ADAPTERS
from agentbus.services.egress.ledger import PgDeliveryLedger
from agentbus.services.egress.ports import DeliveryLedger, Outbound, RateLimiter
from agentbus.services.egress.ratelimit import TokenBuckets
from agentbus.services.egress.shared_limits import PgRateLimiter
from tests.support.ports import assert_implements
from tests.unit.fakes_egress import FakeDeliveryLedger, FakeOutbound, FakeRateLimiter


def test_delivery_ledger_implementations() -> None:
    assert_implements(PgDeliveryLedger, DeliveryLedger)
    assert_implements(FakeDeliveryLedger, DeliveryLedger)


def test_rate_limiter_implementations() -> None:
    assert_implements(TokenBuckets, RateLimiter)
    assert_implements(PgRateLimiter, RateLimiter)
    assert_implements(FakeRateLimiter, RateLimiter)


@pytest.mark.parametrize("adapter", sorted(ADAPTERS.values(), key=lambda cls: cls.type), ids=lambda cls: cls.type)
def test_every_channel_adapter_is_an_outbound(adapter: type) -> None:
    assert_implements(adapter, Outbound)


def test_fake_outbound() -> None:
    assert_implements(FakeOutbound, Outbound)
