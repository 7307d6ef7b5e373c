"""The scheduler's handler against in-memory fakes: commands (v2, and v1 upcast), YAML sync, a tick's firings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from agentbus.bus import PermanentError
from agentbus.channeltypes import WebhookChannel
from agentbus.config import Agent, Job, PlatformConfig, Tenant
from agentbus.events import CreateJob, JobCommand, JobRequested, JobRequestedV1, JobTriggered, Replay, parse_event
from agentbus.ids import derive_id
from agentbus.services.scheduler.handlers import Scheduler
from agentbus.services.scheduler.ports import JobSpec
from agentbus.services.scheduler.schedule import firing_event
from tests.unit.fakes_scheduler import FakeJobStore, FakePublisher

T0 = datetime(2026, 1, 1, tzinfo=UTC)


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


def command(action: str = "create", tenant: str = "acme", at: int = 0, job_id: str = "daily",
            **data: Any) -> JobRequested:
    """A command issued ``at`` seconds after T0."""
    cmd = JobCommand.model_validate({"job_id": job_id, "action": action, "requested_by": "cli", **data})
    event = JobRequested.new(cmd, source="cli", tenant=tenant, conversation=f"{tenant}/acme/c1")
    return event.model_copy(update={"occurred_at": T0 + timedelta(seconds=at)})


CREATE: dict[str, Any] = {"schedule": {"kind": "every", "expr": "60"}, "channel": "acme",
                          "chat": {"id": "c1", "type": "group"}, "prompt": "status?", "reply_route": {"thread": "t"}}


async def test_create_stores_the_job_of_the_channels_tenant() -> None:
    s, store, _ = scheduler()
    assert await s.apply_command(command(**CREATE)) == []
    row = store.rows["daily"]
    assert row.spec == JobSpec(
        job_id="daily", source="api", kind="every", expr="60", timezone="UTC", tenant="acme", agent="a",
        channel="acme", chat_id="c1", chat_type="group", prompt="status?", reply_route={"thread": "t"},
    )
    assert row.state == "active" and row.requested_by == "cli"


async def test_cancel_is_a_tombstone_no_command_brings_back() -> None:
    s, store, _ = scheduler()
    old_create = command(at=0, **CREATE)
    await s.apply_command(old_create)
    await s.apply_command(command("cancel", at=10))
    assert store.rows["daily"].state == "cancelled" and store.rows["daily"].cancelled_at == T0 + timedelta(seconds=10)
    redriven = command(at=5, **{**CREATE, "prompt": "resurrected?"})  # an old create from the dead letters
    await s.apply_command(redriven)
    await s.apply_command(command("create", at=20, **CREATE))  # even a newer one: the id is spent
    await s.apply_command(command("resume", at=30))
    assert store.rows["daily"].state == "cancelled" and store.rows["daily"].spec.prompt == "status?"
    assert len(store.commands) == 5  # each recorded: a redelivery of any of them changes nothing either


async def test_commands_apply_in_the_order_they_were_issued() -> None:
    s, store, _ = scheduler()
    await s.apply_command(command(at=0, **CREATE))
    await s.apply_command(command("pause", at=20))
    await s.apply_command(command("resume", at=10))  # issued before the pause, arrived after it
    await s.apply_command(command("update", at=15, **{**CREATE, "prompt": "old"}))
    assert store.rows["daily"].state == "paused" and store.rows["daily"].spec.prompt == "status?"


async def test_pause_keeps_the_schedule_and_resume_skips_the_missed_runs() -> None:
    s, store, publisher = scheduler()
    await s.apply_command(command(at=0, **CREATE))
    await s.apply_command(command("pause", at=1))
    row = store.rows["daily"]
    row.next_due = datetime.now(UTC) - timedelta(hours=5)  # it would have fired 300 times while paused
    assert await s.tick() == 0 and row.state == "paused" and row.spec.expr == "60"
    before = datetime.now(UTC)
    await s.apply_command(command("resume", at=2))
    assert row.state == "active" and row.next_due is not None and row.next_due >= before + timedelta(seconds=60)
    assert await s.tick() == 0 and publisher.published == []


async def test_a_v1_delete_is_read_as_a_v2_cancel() -> None:
    s, store, _ = scheduler()
    await s.apply_command(command(at=0, **CREATE))
    v1 = JobRequestedV1.new(CreateJob(job_id="daily", action="delete"), source="api", tenant="acme",
                            conversation="acme/acme/c1")
    upcast = parse_event(v1.to_bytes())
    assert isinstance(upcast, JobRequested) and upcast.data.action == "cancel" and upcast.data.requested_by == "api"
    await s.apply_command(upcast)
    assert store.rows["daily"].state == "cancelled"


async def test_a_job_into_another_tenants_channel_is_refused() -> None:
    s, store, _ = scheduler()
    with pytest.raises(PermanentError, match="own tenant"):
        await s.apply_command(command(tenant="globex", **CREATE))
    assert store.rows == {} and store.commands == []


async def test_another_tenants_job_cannot_be_changed_by_id() -> None:
    s, store, _ = scheduler()
    await s.apply_command(command(at=0, **CREATE))
    with pytest.raises(PermanentError, match="another tenant"):
        await s.apply_command(command("cancel", tenant="globex", at=5))
    with pytest.raises(PermanentError, match="another tenant"):
        await s.apply_command(command("create", tenant="globex", at=5, **{**CREATE, "channel": "globex"}))
    assert store.rows["daily"].state == "active" and store.rows["daily"].spec.tenant == "acme"
    assert len(store.commands) == 1


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"kind": "cron", "expr": "0 9 * * *", "timezone": "Mars/Base"}, "schedule.timezone: unknown time zone"),
        ({"kind": "at", "expr": "not-a-date"}, "schedule.expr: not an ISO-8601"),
        ({"kind": "cron", "expr": "61 * * * *"}, "schedule.expr: invalid cron"),
        ({"kind": "every", "expr": "0"}, "schedule.expr: the period must be a positive"),
        ({"kind": "every", "expr": "-60"}, "schedule.expr: the period must be a positive"),
    ],
)
async def test_an_invalid_schedule_is_refused_naming_the_field(schedule: dict[str, str], message: str) -> None:
    s, store, _ = scheduler()
    with pytest.raises(PermanentError, match=message):
        await s.apply_command(command(**{**CREATE, "schedule": schedule}))
    assert store.rows == {} and store.commands == []


async def test_an_incomplete_create_or_an_unknown_channel_is_refused() -> None:
    s, store, _ = scheduler()
    with pytest.raises(PermanentError, match="prompt: create needs"):
        await s.apply_command(command(**{**CREATE, "prompt": None}))
    with pytest.raises(PermanentError, match="unknown channel"):
        await s.apply_command(command(**{**CREATE, "channel": "nowhere"}))
    with pytest.raises(PermanentError, match="agent: unknown agent"):
        await s.apply_command(command(**{**CREATE, "agent": "ghost"}))
    with pytest.raises(PermanentError, match="job_id"):
        await s.apply_command(command(job_id="no spaces", **CREATE))
    assert store.rows == {}


async def test_a_redelivered_command_changes_nothing() -> None:
    s, store, _ = scheduler()
    create = command(at=0, **CREATE)
    await s.apply_command(create)
    await s.apply_command(command("pause", at=5))
    await s.apply_command(create)
    assert store.commands == [create.id, store.commands[1]] and store.rows["daily"].state == "paused"


async def test_pause_or_cancel_of_an_unknown_job_is_recorded_and_changes_nothing() -> None:
    s, store, _ = scheduler()
    await s.apply_command(command("cancel", job_id="ghost"))
    assert store.rows == {} and len(store.commands) == 1


YAML_JOB = Job(id="y1", cron="0 9 * * *", timezone="Asia/Shanghai", channel="globex", chat="g1", prompt="morning")


async def test_yaml_sync_stores_jobs_and_marks_those_no_longer_configured_removed() -> None:
    s, store, _ = scheduler(YAML_JOB)
    old = Scheduler(config(Job(id="gone", every_s=5, channel="acme", chat="c", prompt="p")), store, FakePublisher())
    await old.sync_yaml_jobs()
    await s.sync_yaml_jobs()
    y1 = store.rows["y1"].spec
    assert (y1.source, y1.kind, y1.expr, y1.tenant, y1.agent, y1.chat_type) == (
        "yaml", "cron", "0 9 * * *", "globex", "a", "group")
    assert {j: r.state for j, r in store.rows.items()} == {"gone": "removed", "y1": "active"}
    await old.sync_yaml_jobs()  # configured again: it comes back
    assert store.rows["gone"].state == "active"


async def test_a_yaml_job_cancelled_or_paused_by_command_stays_so_after_a_restart() -> None:
    paused = Job(id="y2", every_s=60, channel="globex", chat="g1", prompt="p")
    s, store, _ = scheduler(YAML_JOB, paused)
    await s.sync_yaml_jobs()
    await s.apply_command(command("cancel", tenant="globex", job_id="y1", at=1))
    await s.apply_command(command("pause", tenant="globex", job_id="y2", at=1))
    restarted = Scheduler(config(YAML_JOB, paused), store, FakePublisher())
    await restarted.sync_yaml_jobs()
    assert store.rows["y1"].state == "cancelled" and store.rows["y2"].state == "paused"


async def test_a_yaml_job_is_changed_in_the_yaml_not_by_command() -> None:
    s, store, _ = scheduler(YAML_JOB)
    await s.sync_yaml_jobs()
    with pytest.raises(PermanentError, match="defined in agentbus.yaml"):
        await s.apply_command(command("update", tenant="globex", job_id="y1", **{**CREATE, "channel": "globex"}))
    assert store.rows["y1"].spec.prompt == "morning"


async def test_a_due_job_is_published_once_and_marked() -> None:
    s, store, publisher = scheduler()
    await s.apply_command(command(**CREATE))
    store.rows["daily"].next_due = datetime.now(UTC) - timedelta(seconds=1)
    assert await s.tick() == 1
    assert await s.tick() == 0
    [event] = publisher.published
    assert isinstance(event, JobTriggered) and event.data.job_id == "daily"
    assert store.published == {("daily", event.data.due_at)}


async def test_missed_runs_coalesce_into_one_firing() -> None:
    s, store, publisher = scheduler()
    await s.apply_command(command(**CREATE))
    store.rows["daily"].next_due = datetime.now(UTC) - timedelta(hours=3)  # down for 180 periods
    assert await s.tick() == 1
    assert await s.tick() == 0
    nxt = store.rows["daily"].next_due
    assert len(publisher.published) == 1 and nxt is not None and nxt > datetime.now(UTC)


async def test_an_at_job_fires_once_then_is_finished() -> None:
    s, store, publisher = scheduler()
    soon = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    await s.apply_command(command(**{**CREATE, "schedule": {"kind": "at", "expr": soon}}))
    assert await s.tick() == 1 and store.rows["daily"].state == "finished"
    await s.apply_command(command("update", at=5, **{**CREATE, "schedule": {"kind": "at", "expr": soon}}))
    assert await s.tick() == 0 and len(publisher.published) == 1  # the same instant does not fire again


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
    s, store, _ = scheduler()
    replayed = command(**CREATE).model_copy(update={"replay": Replay(run="r1")})
    assert await s.apply_command(replayed) == []
    assert store.rows == {} and store.commands == []
