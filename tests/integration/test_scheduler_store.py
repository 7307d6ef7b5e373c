"""The scheduler against the real PostgreSQL: commands (order, tombstones, redelivery), the YAML sync on a
restart, pause/resume, missed runs, one-off jobs, the admin endpoint, and exactly one firing per due time
with two scheduler instances claiming at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from agentbus.config import parse_config
from agentbus.db import open_pool
from agentbus.events import JobCommand, JobRequested
from agentbus.http import LoopbackServer
from agentbus.services.scheduler.handlers import Scheduler
from agentbus.services.scheduler.routes import job_routes
from agentbus.services.scheduler.store import PgJobStore
from agentbus.settings import Settings
from tests.support.db import service_pool
from tests.support.platform import Infra, base_config
from tests.unit.fakes_scheduler import FakePublisher

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CREATE: dict[str, Any] = {"schedule": {"kind": "every", "expr": "60"}, "channel": "acme",
                          "chat": {"id": "c1", "type": "group"}, "prompt": "status?"}


@pytest.fixture
async def pool(infra: Infra) -> AsyncIterator[AsyncConnectionPool]:
    async with service_pool(infra.database_url, "scheduler") as p:
        yield p


def scheduler(pool: AsyncConnectionPool, jobs: list[dict[str, Any]] | None = None) -> Scheduler:
    cfg = base_config()
    cfg["jobs"] = jobs or []
    return Scheduler(parse_config(cfg), PgJobStore(pool), FakePublisher())


def command(action: str = "create", at: int = 0, job_id: str = "daily", tenant: str = "acme",
            **data: Any) -> JobRequested:
    cmd = JobCommand.model_validate({"job_id": job_id, "action": action, "requested_by": "cli", **data})
    event = JobRequested.new(cmd, source="cli", tenant=tenant, conversation=f"{tenant}/acme/c1")
    return event.model_copy(update={"occurred_at": T0 + timedelta(seconds=at)})


async def states(pool: AsyncConnectionPool) -> dict[str, str]:
    return {v.spec.job_id: v.state for v in await PgJobStore(pool).list_jobs()}


async def set_due(pool: AsyncConnectionPool, job_id: str, due: datetime) -> None:
    async with pool.connection() as conn:
        await conn.execute("UPDATE jobs SET next_due = %s WHERE job_id = %s", (due, job_id))


async def firings(pool: AsyncConnectionPool) -> list[tuple[str, datetime]]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT job_id, due_at FROM firings ORDER BY job_id, due_at")
        return [(r[0], r[1]) for r in await cur.fetchall()]


async def test_a_redriven_old_create_never_resurrects_a_cancelled_job(pool: AsyncConnectionPool) -> None:
    s = scheduler(pool)
    create = command(at=0, **CREATE)
    await s.apply_command(create)
    await s.apply_command(command("cancel", at=60))
    await s.apply_command(create)  # redelivered: already processed
    redriven = command(at=30, **{**CREATE, "prompt": "back?"})  # dead-lettered then, redriven now
    await s.apply_command(redriven)
    [view] = await PgJobStore(pool).list_jobs()
    assert (view.state, view.spec.prompt, view.next_due) == ("cancelled", "status?", None)
    assert view.cancelled_at == T0 + timedelta(seconds=60)
    await set_due(pool, "daily", datetime.now(UTC) - timedelta(minutes=1))  # even with a due time, it never fires
    assert await s.tick() == 0 and await firings(pool) == []
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM processed_events")
        assert (await cur.fetchone()) == (3,)  # create, cancel, the redriven create: each recorded once


async def test_restart_keeps_a_cancelled_or_paused_yaml_job_and_removes_one_left_out(pool: AsyncConnectionPool) -> None:
    jobs = [{"id": "y1", "every_s": 60, "channel": "acme", "chat": "c1", "prompt": "one"},
            {"id": "y2", "cron": "0 9 * * *", "timezone": "Europe/Berlin", "channel": "acme", "chat": "c1",
             "prompt": "two"},
            {"id": "y3", "every_s": 60, "channel": "acme", "chat": "c1", "prompt": "three"}]
    first = scheduler(pool, jobs)
    await first.sync_yaml_jobs()
    assert await states(pool) == {"y1": "active", "y2": "active", "y3": "active"}
    await first.apply_command(command("cancel", job_id="y1", at=1))
    await first.apply_command(command("pause", job_id="y2", at=1))
    restarted = scheduler(pool, jobs[:2])  # y3 left out of agentbus.yaml
    await restarted.sync_yaml_jobs()
    assert await states(pool) == {"y1": "cancelled", "y2": "paused", "y3": "removed"}
    await scheduler(pool, jobs).sync_yaml_jobs()  # y3 configured again
    assert (await states(pool))["y3"] == "active"


async def test_pause_keeps_the_schedule_and_resume_fires_next_after_now(pool: AsyncConnectionPool) -> None:
    s = scheduler(pool)
    await s.apply_command(command(at=0, **CREATE))
    await s.apply_command(command("pause", at=1))
    await set_due(pool, "daily", datetime.now(UTC) - timedelta(hours=5))
    assert await s.tick() == 0
    [paused] = await PgJobStore(pool).list_jobs()
    assert (paused.state, paused.spec.kind, paused.spec.expr) == ("paused", "every", "60")
    before = datetime.now(UTC)
    await s.apply_command(command("resume", at=2))
    [resumed] = await PgJobStore(pool).list_jobs()
    assert resumed.state == "active" and resumed.next_due is not None
    assert resumed.next_due >= before + timedelta(seconds=60)
    assert await s.tick() == 0 and await firings(pool) == []  # no burst of the runs missed while paused


async def test_missed_runs_while_down_coalesce_into_one_firing(pool: AsyncConnectionPool) -> None:
    s = scheduler(pool)
    await s.apply_command(command(at=0, **CREATE))
    missed = datetime.now(UTC) - timedelta(hours=3)
    await set_due(pool, "daily", missed)
    assert await s.tick() == 1
    assert await s.tick() == 0
    assert await firings(pool) == [("daily", missed)]
    [view] = await PgJobStore(pool).list_jobs()
    assert view.next_due is not None and view.next_due > datetime.now(UTC)


async def test_an_at_job_fires_once_then_is_finished_also_after_a_restart(pool: AsyncConnectionPool) -> None:
    at = (datetime.now(UTC) - timedelta(seconds=1)).replace(microsecond=0)
    jobs = [{"id": "once", "at": at.isoformat(), "channel": "acme", "chat": "c1", "prompt": "now"}]
    s = scheduler(pool, jobs)
    await s.sync_yaml_jobs()
    assert await s.tick() == 1
    assert await states(pool) == {"once": "finished"}
    await scheduler(pool, jobs).sync_yaml_jobs()
    assert await states(pool) == {"once": "finished"} and await s.tick() == 0
    assert await firings(pool) == [("once", at)]


async def test_a_cron_job_in_a_time_zone_is_due_on_its_wall_clock(pool: AsyncConnectionPool) -> None:
    s = scheduler(pool)
    await s.apply_command(command(**{**CREATE, "schedule": {"kind": "cron", "expr": "0 9 * * *",
                                                            "timezone": "Asia/Shanghai"}}))
    [view] = await PgJobStore(pool).list_jobs()
    assert view.next_due is not None and view.next_due > datetime.now(UTC)
    assert (view.next_due.hour, view.next_due.minute) == (1, 0)  # 09:00 in Shanghai (UTC+8, no DST) is 01:00 UTC
    assert view.next_due - datetime.now(UTC) <= timedelta(days=1)


async def test_two_instances_claiming_at_once_fire_each_due_time_once(infra: Infra, pool: AsyncConnectionPool) -> None:
    s = scheduler(pool)
    n = 40
    for i in range(n):
        await s.apply_command(command(job_id=f"j{i}", at=0, **CREATE))
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT current_schema()")).fetchone()
    assert row is not None
    schema = row[0]
    other = await open_pool(Settings(database_url=infra.database_url), schema, max_size=4)
    try:
        a, b = PgJobStore(pool), PgJobStore(other)
        for round_ in range(3):
            due = (datetime.now(UTC) - timedelta(minutes=10 * (round_ + 1))).replace(microsecond=0)
            async with pool.connection() as conn:
                await conn.execute("UPDATE jobs SET next_due = %s", (due,))
            now = datetime.now(UTC)
            counts = await asyncio.gather(*(store.claim_due(now, limit=3) for store in (a, b) * 12))
            assert sum(counts) == n  # every job claimed by exactly one of the 24 concurrent claims
            assert sum(1 for c in counts if c) > 1  # the work was shared, not done by one claim
            rows = await firings(pool)
            assert len(rows) == n * (round_ + 1) and len(set(rows)) == len(rows)
            assert await a.claim_due(now) + await b.claim_due(now) == 0
    finally:
        await other.close()


async def test_the_admin_endpoint_filters_and_validates(pool: AsyncConnectionPool) -> None:
    s = scheduler(pool)
    await s.apply_command(command(job_id="mine", **CREATE))
    await s.apply_command(command(job_id="other-chat", **{**CREATE, "chat": {"id": "c2"}}))
    await s.apply_command(command(job_id="globex-job", tenant="globex", **{**CREATE, "channel": "globex"}))
    await s.apply_command(command("pause", job_id="other-chat", at=1))
    server = LoopbackServer(job_routes(PgJobStore(pool)))
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            r = await http.get("/v1/jobs", params={"tenant": "acme", "channel": "acme", "chat": "c1"})
            assert r.status_code == 200
            [job] = r.json()["jobs"]
            assert job["job_id"] == "mine" and job["state"] == "active" and job["prompt"] == "status?"
            assert job["schedule"] == {"kind": "every", "expr": "60", "timezone": "UTC"} and job["timezone"] == "UTC"
            assert datetime.fromisoformat(job["next_due"]) > datetime.now(UTC)
            r = await http.get("/v1/jobs", params={"tenant": "acme"})
            assert {j["job_id"]: j["state"] for j in r.json()["jobs"]} == {"mine": "active", "other-chat": "paused"}
            assert len((await http.get("/v1/jobs")).json()["jobs"]) == 3
            for bad, reason in ((("tenants", "acme"),), "unknown query parameter 'tenants'"), \
                               ((("chat", "a"), ("chat", "b")), "chat: give it once"), \
                               ((("tenant", ""),), "tenant: must be 1 to 256"):
                r = await http.get("/v1/jobs", params=list(bad))
                assert r.status_code == 400 and reason in r.json()["error"], r.text
    finally:
        await server.stop()


async def test_jobs_disabled_before_states_existed_keep_their_meaning(infra: Infra, tmp_path: Any) -> None:
    """Migration 002: a job deleted by a v1 command is cancelled, one left out of the YAML removed."""
    import shutil
    import uuid

    from agentbus.cli.admin import migrations_dir
    from agentbus.db import migrate

    schema = f"scheduler_m_{uuid.uuid4().hex[:8]}"
    shutil.copy(migrations_dir("scheduler") / "001_jobs.sql", tmp_path / "001_jobs.sql")
    pool = await open_pool(Settings(database_url=infra.database_url), schema, max_size=2)
    try:
        await migrate(pool, schema, tmp_path)
        async with pool.connection() as conn:
            for job_id, source, enabled, due in (("deleted", "api", False, T0), ("left-out", "yaml", False, T0),
                                                 ("done", "api", False, None), ("live", "yaml", True, T0)):
                await conn.execute(
                    "INSERT INTO jobs (job_id, source, kind, expr, tenant, agent, channel, chat_id, prompt, enabled, "
                    "next_due) VALUES (%s, %s, 'every', '60', 'acme', 'a', 'acme', 'c1', 'p', %s, %s)",
                    (job_id, source, enabled, due))
        assert (await migrate(pool, schema, migrations_dir("scheduler")))[:1] == ["002_job_states"]
        assert await states(pool) == {"deleted": "cancelled", "left-out": "removed", "done": "finished",
                                      "live": "active"}
    finally:
        async with pool.connection() as conn:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await pool.close()
