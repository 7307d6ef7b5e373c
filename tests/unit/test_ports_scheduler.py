"""The scheduler's adapters and fakes implement its ports, so a drift on either side fails here."""

from __future__ import annotations

from agentbus.bus import Producer
from agentbus.services.scheduler.ports import JobStore, Publisher
from agentbus.services.scheduler.store import PgJobStore
from tests.support.ports import assert_implements
from tests.unit.fakes_scheduler import FakeJobStore, FakePublisher


def test_job_store_implementations() -> None:
    assert_implements(PgJobStore, JobStore)
    assert_implements(FakeJobStore, JobStore)


def test_publisher_implementations() -> None:
    assert_implements(Producer, Publisher)
    assert_implements(FakePublisher, Publisher)
