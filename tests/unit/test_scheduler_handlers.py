"""The scheduler's handler against in-memory fakes: commands, YAML sync, and a tick's firings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from agentbus.bus import PermanentError
from agentbus.channeltypes import WebhookChannel
from agentbus.config import Agent, Job, PlatformConfig, Tenant
from agentbus.events import Chat, CreateJob, JobRequested, JobTriggered, Schedule
from agentbus.ids import derive_id
from agentbus.services.scheduler.handlers import Scheduler
from agentbus.services.scheduler.ports import JobSpec
from agentbus.services.scheduler.schedule import firing_event
from tests.unit.fakes_scheduler import FakeJobStore, FakePublisher


def config(*jobs: Job) -> PlatformConfig:
    channels = tuple(
        WebhookChannel(id=t, type="webhook", tenant=t, agent="a", secret={"env": "X", "default": "whsec_eA=="})
        for t in ("acme", "globex")
    )
    return PlatformConfig(tenants=(Tenant(id="acme"), Tenant(id="globex")), agents=(Agent(id="a"),),
                          channels=channels, jobs=jobs)


def scheduler(*jobs: Job) -> tuple[Scheduler, FakeJobStore, FakePublisher]:
    store, publisher = FakeJobStore(), FakePublisher()
    return Scheduler(config(*jobs), store, publisher), store, publisher


def command(tenant: str = "acme", action: str = "create", **data: object) -> JobRequested:
    cmd = CreateJob.model_validate({"job_id": "daily", "action": action, **data})
    return JobRequested.new(cmd, source="reasoner", tenant=tenant, conversation=f"{tenant}/acme/c1")


CREATE = {"schedule": Schedule(kind="every", expr="60"), "channel": "acme", "chat": Chat(id="c1", type="group"),
          "prompt": "status?", "reply_route": {"thread": "t"}}


async def test_create_stores_the_job_of_the_channels_tenant() -> None:
    s, store, _ = scheduler()
    assert await s.apply_command(command(**CREATE)) == []
    assert store.jobs["daily"] == JobSpec(
        job_id="daily", source="api", kind="every", expr="60", timezone="UTC", tenant="acme", agent="a",
        channel="acme", chat_id="c1", chat_type="group", prompt="status?", reply_route={"thread": "t"},
    )
    assert store.enabled["daily"] is True


async def test_delete_disables_the_job() -> None:
    s, store, _ = scheduler()
    await s.apply_command(command(**CREATE))
    await s.apply_command(command(action="delete"))
    assert store.enabled["daily"] is False
    assert len(store.commands) == 2


async def test_a_job_into_another_tenants_channel_is_refused() -> None:
    s, store, _ = scheduler()
    with pytest.raises(PermanentError, match="own tenant"):
        await s.apply_command(command(tenant="globex", **CREATE))
    assert store.jobs == {} and store.commands == []


async def test_create_without_a_prompt_or_with_an_unknown_channel_is_refused() -> None:
    s, store, _ = scheduler()
    with pytest.raises(PermanentError, match="needs schedule"):
        await s.apply_command(command(**{**CREATE, "prompt": None}))
    with pytest.raises(PermanentError, match="unknown channel"):
        await s.apply_command(command(**{**CREATE, "channel": "nowhere"}))
    assert store.jobs == {}


async def test_a_redelivered_command_is_recorded_once() -> None:
    s, store, _ = scheduler()
    event = command(**CREATE)
    await s.apply_command(event)
    await s.apply_command(event)
    assert store.commands == [event.id]
    assert list(store.jobs) == ["daily"]


async def test_yaml_sync_stores_jobs_and_disables_those_no_longer_configured() -> None:
    s, store, _ = scheduler(Job(id="y1", cron="0 9 * * *", timezone="Asia/Shanghai", channel="globex", chat="g1",
                                prompt="morning"))
    store.jobs["gone"] = JobSpec(job_id="gone", source="yaml", kind="every", expr="5", timezone="UTC",
                                 tenant="acme", agent="a", channel="acme", chat_id="c", chat_type="group", prompt="p")
    store.enabled["gone"] = True
    await s.sync_yaml_jobs()
    y1 = store.jobs["y1"]
    assert (y1.source, y1.kind, y1.expr, y1.tenant, y1.agent, y1.chat_type) == (
        "yaml", "cron", "0 9 * * *", "globex", "a", "group")
    assert store.enabled == {"gone": False, "y1": True}


async def test_a_due_job_is_published_once_and_marked() -> None:
    s, store, publisher = scheduler()
    await s.apply_command(command(**CREATE))
    store.due["daily"] = datetime.now(UTC) - timedelta(seconds=1)
    assert await s.tick() == 1
    assert await s.tick() == 0
    [event] = publisher.published
    assert isinstance(event, JobTriggered) and event.data.job_id == "daily"
    assert store.published == {("daily", event.data.due_at)}


def test_firing_ids_and_keys_are_those_already_stored() -> None:
    """Firings in existing databases are keyed by these ids: the formula must not change."""
    due = datetime(2024, 5, 2, 1, 0, tzinfo=timezone(timedelta(hours=8)))  # 17:00 UTC, from a non-UTC reader
    job = JobSpec(job_id="daily", source="api", kind="every", expr="60", timezone="UTC", tenant="acme",
                  agent="a", channel="acme", chat_id="c/1", chat_type="group", prompt="p")
    event = firing_event(job, due, datetime.now(UTC))
    assert event.id == derive_id("job:daily", "2024-05-01T17:00:00+00:00")
    assert str(event.id) == "67c94bf9-563e-574c-a91f-833388628f6a"
    assert event.correlation_id == event.id
    assert event.conversation == "acme/acme/c/1"


async def test_a_replayed_command_changes_no_job() -> None:
    from agentbus.events import Replay

    s, store, _ = scheduler()
    replayed = command(**CREATE).model_copy(update={"replay": Replay(run="r1")})
    assert await s.apply_command(replayed) == []
    assert store.jobs == {} and store.commands == []
