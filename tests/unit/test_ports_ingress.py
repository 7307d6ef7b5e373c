"""Ingress's adapters and fakes implement its ports, so a drift on either side fails here."""

from __future__ import annotations

from agentbus.bus import Producer
from agentbus.services.ingress.confirmations import PgConfirmations
from agentbus.services.ingress.dedupe import PgDedupe
from agentbus.services.ingress.forgetme import Confirmations, ForgetMe
from agentbus.services.ingress.longconn.lease import PgLeases
from agentbus.services.ingress.ports import DedupeStore, ErasureRequests, Leases, Publisher
from tests.support.ports import assert_implements
from tests.unit.fakes_ingress import FakeDedupe, FakeLeases, FakePublisher


def test_dedupe_store_implementations() -> None:
    assert_implements(PgDedupe, DedupeStore)
    assert_implements(FakeDedupe, DedupeStore)


def test_publisher_implementations() -> None:
    assert_implements(Producer, Publisher)
    assert_implements(FakePublisher, Publisher)


def test_lease_implementations() -> None:
    assert_implements(PgLeases, Leases)
    assert_implements(FakeLeases, Leases)


def test_erasure_request_implementations() -> None:
    assert_implements(ForgetMe, ErasureRequests)
    assert_implements(PgConfirmations, Confirmations)
