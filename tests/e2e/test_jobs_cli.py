"""``agentbus jobs`` end to end: the command line publishes job.requested v2 to the real broker, a running
scheduler process applies it, and ``agentbus jobs list`` reads the result from the scheduler's /v1/jobs."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from agentbus.eventlog import read_records
from agentbus.events import JobRequested, JobTriggered, parse_event
from agentbus.settings import Settings
from agentbus.topics import topic_for
from tests.support.platform import Infra, Platform, base_config, run_platform

pytestmark = pytest.mark.e2e


async def jobs_cli(infra: Infra, p: Platform, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "AGENTBUS_KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap, "AGENTBUS_TOPIC_PREFIX": p.prefix,
           "AGENTBUS_CONFIG_FILE": str(p.stack.config_file), "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentbus.cli", "jobs", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def listed(infra: Infra, p: Platform, *filters: str) -> list[dict[str, Any]]:
    code, out, err = await jobs_cli(infra, p, "list", "--json", "--scheduler-url", p.url_of("scheduler"), *filters)
    assert code == 0, err
    return orjson.loads(out)


async def until(infra: Infra, p: Platform, ok: Callable[[dict[str, dict[str, Any]]], bool]) -> dict[str, Any]:
    """Poll ``jobs list`` until ``ok`` holds of the jobs by id (commands apply asynchronously)."""
    jobs: dict[str, Any] = {}
    for _ in range(100):
        jobs = {j["job_id"]: j for j in await listed(infra, p)}
        if ok(jobs):
            return jobs
        await asyncio.sleep(0.3)
    raise AssertionError(f"jobs never reached the expected state: {jobs}")


TARGET = ("--tenant", "acme", "--channel", "acme", "--chat", "standup")


async def test_jobs_created_paused_resumed_and_cancelled_from_the_command_line(infra: Infra) -> None:
    async with run_platform(infra, base_config(), services=("scheduler",),
                            env={"AGENTBUS_SCHEDULER_TICK_S": "0.2"}) as p:
        settings = Settings(kafka_bootstrap_servers=infra.bootstrap, topic_prefix=p.prefix)
        # refused locally, exit 2, nothing published
        for bad, reason in (
            (("--every", "1", "--timezone", "Mars/Base"), "schedule.timezone: unknown time zone 'Mars/Base'"),
            (("--at", "not-a-date"), "schedule.expr: not an ISO-8601"),
            (("--cron", "0 9 * * *", "--every", "5"), "exactly one of --cron, --every, --at"),
        ):
            code, _, err = await jobs_cli(infra, p, "create", *TARGET, "--prompt", "standup?", *bad)
            assert code == 2 and reason in err, err
        code, _, err = await jobs_cli(infra, p, "create", "--tenant", "globex", "--channel", "acme", "--chat", "x",
                                      "--prompt", "p", "--every", "5")
        assert code == 2 and "is a channel of tenant 'acme'" in err

        code, out, err = await jobs_cli(infra, p, "create", *TARGET, "--prompt", "Time for standup", "--every", "1",
                                        "--id", "standup")
        assert code == 0 and "create job standup: requested" in out, err
        jobs = await until(infra, p, lambda j: "standup" in j)
        job = jobs["standup"]
        assert (job["state"], job["schedule"], job["requested_by"]) == (
            "active", {"kind": "every", "expr": "1", "timezone": "UTC"}, "cli")
        assert job["chat"] == {"id": "standup", "type": "group"} and job["prompt"] == "Time for standup"

        triggered = topic_for(p.prefix, "job.triggered")
        for _ in range(100):  # it fires through the real broker
            fired = [parse_event(r.value) for r in await read_records(settings, [triggered], timeout_s=10)]
            if fired:
                break
            await asyncio.sleep(0.3)
        assert fired and all(isinstance(e, JobTriggered) and e.data.job_id == "standup" for e in fired)

        for action, state in (("pause", "paused"), ("resume", "active"), ("cancel", "cancelled")):
            code, _, err = await jobs_cli(infra, p, action, "--id", "standup", *TARGET)
            assert code == 0, err
            await until(infra, p, lambda j, want=state: j["standup"]["state"] == want)

        # a new create with the cancelled id, and a restart re-syncing agentbus.yaml: still cancelled
        code, _, _ = await jobs_cli(infra, p, "create", *TARGET, "--prompt", "again?", "--every", "1",
                                    "--id", "standup")
        assert code == 0
        await p.restart("scheduler")
        code, _, _ = await jobs_cli(infra, p, "create", *TARGET, "--prompt", "marker", "--every", "60", "--id", "later")
        assert code == 0
        jobs = await until(infra, p, lambda j: "later" in j)  # applied after the one before it (same partition)
        assert jobs["standup"]["state"] == "cancelled" and jobs["standup"]["prompt"] == "Time for standup"

        assert [j["job_id"] for j in await listed(infra, p, "--chat", "standup")] == ["later", "standup"]
        assert await listed(infra, p, "--chat", "elsewhere") == []
        code, _, err = await jobs_cli(infra, p, "list", "--scheduler-url", p.url_of("scheduler"), "--tenant", "")
        assert code == 2 and "tenant: must be 1 to 256" in err

        commands = [parse_event(r.value) for r in await read_records(
            settings, [topic_for(p.prefix, "job.requested", 2)], timeout_s=10)]
        actions = [(e.data.action, e.data.job_id) for e in commands if isinstance(e, JobRequested)]
        assert actions == [("create", "standup"), ("pause", "standup"), ("resume", "standup"), ("cancel", "standup"),
                           ("create", "standup"), ("create", "later")]  # none of the refused ones
        assert {e.source for e in commands} == {"cli"}
