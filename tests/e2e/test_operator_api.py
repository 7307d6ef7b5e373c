"""The operator API through the running platform: a token made by ``agentbus tokens create``, jobs listed
and created over HTTP on ingress, applied by the scheduler process, and the write in the audit log (the
API's and ``agentbus audit``'s), which ingress fills from the ``audit.recorded`` events it consumes."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from agentbus.eventlog import read_records
from agentbus.events import JobRequested, parse_event
from agentbus.settings import Settings
from agentbus.topics import topic_for
from tests.support.platform import Infra, Platform, base_config, run_platform

pytestmark = pytest.mark.e2e


async def cli(infra: Infra, p: Platform, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, **infra.env, "AGENTBUS_TOPIC_PREFIX": p.prefix,
           "AGENTBUS_DB_SCHEMA_SUFFIX": p.schema_suffix, "AGENTBUS_CONFIG_FILE": str(p.stack.config_file),
           "AGENTBUS_DEV_MODE": "true", "COLUMNS": "200"}  # the platform's own: a development stack
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentbus.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def until(fetch: Callable[[], Any], ok: Callable[[Any], bool]) -> Any:
    """Poll ``fetch`` until ``ok`` holds of what it returns (commands and audit apply asynchronously)."""
    value: Any = None
    for _ in range(150):
        value = await fetch()
        if ok(value):
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"never reached the expected state: {value}")


async def test_a_cli_token_lists_and_creates_jobs_and_the_audit_shows_the_write(infra: Infra) -> None:
    async with run_platform(infra, base_config(), services=("ingress", "scheduler"),
                            env={"AGENTBUS_SCHEDULER_TICK_S": "0.5"}) as p:
        code, token, err = await cli(infra, p, "tokens", "create", "--name", "acme-ops", "--tenant", "acme",
                                     "--role", "operator", "--expires-days", "1")
        assert code == 0, err
        token = token.strip()
        assert token.startswith("agb_") and "shown only now" in err
        code, _, err = await cli(infra, p, "tokens", "create", "--name", "x", "--tenant", "nobody", "--role", "viewer")
        assert code == 2 and "unknown tenant 'nobody'" in err
        code, out, err = await cli(infra, p, "tokens", "create", "--name", "globex-ops", "--tenant", "globex",
                                   "--role", "admin")
        assert code == 0, err
        globex = out.strip()

        api = p.ingress_url + "/api/v1"
        auth = {"authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(timeout=15) as http:
            me = (await http.get(f"{api}/me", headers=auth)).json()
            assert (me["name"], me["tenant"], me["role"]) == ("acme-ops", "acme", "operator")
            assert (await http.get(f"{api}/me")).status_code == 401
            resp = await http.get(f"{api}/tenants/acme/jobs", headers=auth)
            assert resp.status_code == 200 and resp.json() == []

            resp = await http.post(f"{api}/tenants/acme/jobs", headers=auth, json={
                "id": "standup", "channel": "acme", "chat": "team", "prompt": "Time for standup", "every_s": 3600})
            assert resp.status_code == 202, resp.text
            command_id = resp.json()["command_id"]
            resp = await http.post(f"{api}/tenants/acme/jobs", headers=auth, json={
                "channel": "acme", "chat": "team", "prompt": "p", "every_s": 60, "timezone": "Mars/Base"})
            assert resp.status_code == 422 and "timezone" in resp.json()["error"]

            async def jobs() -> list[dict[str, Any]]:
                return list((await http.get(f"{api}/tenants/acme/jobs", headers=auth)).json())

            [job] = await until(jobs, lambda js: len(js) == 1)
            assert (job["job_id"], job["state"], job["prompt"]) == ("standup", "active", "Time for standup")
            assert job["requested_by"] == f"token:{me['token_id']}"
            # the scheduler holds it (its own admin endpoint), and globex cannot see or touch it
            direct = (await http.get(f"{p.url_of('scheduler')}/v1/jobs", params={"tenant": "acme"})).json()["jobs"]
            assert [j["job_id"] for j in direct] == ["standup"]
            g = {"authorization": f"Bearer {globex}"}
            assert (await http.get(f"{api}/tenants/acme/jobs", headers=g)).status_code == 404
            assert (await http.post(f"{api}/tenants/acme/jobs/standup/pause", headers=g)).status_code == 404

            resp = await http.post(f"{api}/tenants/acme/jobs/standup/pause", headers=auth)
            assert resp.status_code == 202
            await until(jobs, lambda js: js[0]["state"] == "paused")

            resp = await http.get(f"{api}/audit", headers=auth)
            assert resp.status_code == 403  # an operator does not read the audit log; admins do
            code, out, err = await cli(infra, p, "tokens", "create", "--name", "auditor", "--tenant", "acme",
                                       "--role", "admin")
            assert code == 0, err
            auditor = {"authorization": f"Bearer {out.strip()}"}

            async def audit() -> list[dict[str, Any]]:
                return list((await http.get(f"{api}/audit", headers=auditor)).json())

            entries = await until(audit, lambda es: {e["action"] for e in es} >= {"jobs.create", "jobs.pause",
                                                                                  "tokens.create"})
            create = next(e for e in entries if e["action"] == "jobs.create")
            assert (create["actor"], create["actor_name"], create["target"], create["outcome"], create["tenant"]) == (
                f"token:{me['token_id']}", "acme-ops", "standup", "ok", "acme")
            assert {(e["action"], e["actor"]) for e in entries if e["action"] == "tokens.create"} == {
                ("tokens.create", "cli")}
            assert all(e["tenant"] == "acme" for e in entries)
            globex_view = (await http.get(f"{api}/audit", headers=g)).json()
            denied = [e for e in globex_view if e["outcome"] == "denied"]
            assert [e["action"] for e in denied] == ["jobs.pause"] and all(e["tenant"] == "globex" for e in denied)

        code, out, err = await cli(infra, p, "audit", "--tenant", "acme", "--json")
        assert code == 0, err
        assert {e["action"] for e in orjson.loads(out)} >= {"jobs.create", "jobs.pause", "tokens.create"}
        code, out, err = await cli(infra, p, "tokens", "list", "--tenant", "acme")
        assert code == 0 and "acme-ops" in out and "auditor" in out and token.split("_", 2)[2] not in out

        code, out, err = await cli(infra, p, "tokens", "revoke", me["token_id"])
        assert code == 0 and "revoked" in out, err
        async with httpx.AsyncClient(timeout=15) as http:
            resp = await http.get(f"{api}/me", headers=auth)
            assert resp.status_code == 401 and resp.json()["error"] == "token revoked"

        settings = Settings(kafka_bootstrap_servers=infra.bootstrap, topic_prefix=p.prefix)
        commands = [parse_event(r.value) for r in await read_records(
            settings, [topic_for(p.prefix, "job.requested", 2)], timeout_s=10)]
        assert [(e.data.action, e.source) for e in commands if isinstance(e, JobRequested)] == [
            ("create", "ingress"), ("pause", "ingress")]  # none of the refused ones
        assert str(commands[0].id) == command_id
