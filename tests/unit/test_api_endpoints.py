"""Each operator API endpoint against fakes: what it answers, what it publishes, what it refuses."""

from __future__ import annotations

from agentbus.events import AuditRecorded, JobRequested
from agentbus.services.ingress.api.audit import AuditRecorder, audit_event
from tests.unit.fakes_api import FakeAudit, job, served_api

SECRETS = ("whsec_c2VjcmV0LWFjbWU=", "whsec_c2VjcmV0LWdsb2JleA==", "sk-secret-default", "org-secret", "pw", "k1")


async def test_me_and_tenants_show_the_tokens_grants() -> None:
    async with served_api() as api:
        admin = await api.token("acme", "admin", name="ops")
        me = (await api.call("GET", "/me", admin)).json()
        assert (me["name"], me["role"], me["tenant"], me["grants"]) == (
            "ops", "admin", "acme", [{"tenant": "acme", "role": "admin"}])
        assert (await api.call("GET", "/tenants", admin)).json() == [{"id": "acme", "name": "Acme"}]
        owner = await api.token(None, "owner")
        assert [g["tenant"] for g in (await api.call("GET", "/me", owner)).json()["grants"]] == ["acme", "globex"]
        assert [t["id"] for t in (await api.call("GET", "/tenants", owner)).json()] == ["acme", "globex"]


async def test_agents_channels_and_models_never_show_a_secret() -> None:
    async with served_api() as api:
        viewer = await api.token("acme", "viewer")
        agents = (await api.call("GET", "/tenants/acme/agents", viewer)).json()
        assert [(a["id"], a["model"], a["channels"]) for a in agents] == [("assistant", "qwen", ["acme-hook"])]
        channels = await api.call("GET", "/tenants/acme/channels", viewer)
        assert [(c["id"], c["credentials"]) for c in channels.json()] == [
            ("acme-hook", {"secret": {"env": "ACME_SECRET"}})]
        models = await api.call("GET", "/models", viewer)
        [m] = models.json()
        assert (m["base_url"], m["api_key"], m["header_names"]) == (
            "https://llm.example.com/v1", {"env": "QWEN_KEY"}, ["X-Org"])
        for resp in (channels, models):
            assert not any(s in resp.text for s in SECRETS), resp.text


async def test_jobs_are_listed_from_the_scheduler_and_only_the_tenants() -> None:
    async with served_api() as api:
        api.jobs.jobs = [job("acme", "standup", "acme-hook"), job("globex", "report", "globex-hook")]
        viewer = await api.token("acme", "viewer")
        listed = (await api.call("GET", "/tenants/acme/jobs", viewer)).json()
        assert [j["job_id"] for j in listed] == ["standup"] and listed[0]["schedule"]["kind"] == "every"
        assert (await api.call("GET", "/tenants/acme/jobs?chat=elsewhere", viewer)).json() == []
        api.jobs.down = True
        resp = await api.call("GET", "/tenants/acme/jobs", viewer)
        assert resp.status_code == 503


async def test_creating_a_job_publishes_its_command_and_audit_answered_202() -> None:
    async with served_api() as api:
        op = await api.token("acme", "operator", name="bot")
        resp = await api.call("POST", "/tenants/acme/jobs", op, json={
            "id": "standup", "channel": "acme-hook", "chat": "team", "prompt": "standup?", "cron": "0 9 * * 1-5",
            "timezone": "Asia/Shanghai"})
        assert resp.status_code == 202, resp.text
        cmd, audit = api.publisher.published
        assert isinstance(cmd, JobRequested) and isinstance(audit, AuditRecorded)
        assert resp.json() == {"command_id": str(cmd.id), "job_id": "standup", "action": "create"}
        d = cmd.data
        assert (d.action, d.channel, d.chat and d.chat.id, d.schedule and d.schedule.timezone, cmd.tenant) == (
            "create", "acme-hook", "team", "Asia/Shanghai", "acme")
        assert d.requested_by == f"token:{next(iter(api.tokens.rows))}" and cmd.source == "ingress"
        assert cmd.conversation == "acme/acme-hook/team"
        assert (audit.data.action, audit.data.target, audit.data.outcome, audit.data.tenant) == (
            "jobs.create", "standup", "ok", "acme")


async def test_bad_job_input_is_a_422_naming_the_field_and_publishes_nothing() -> None:
    async with served_api() as api:
        op = await api.token("acme", "operator")
        good = {"channel": "acme-hook", "chat": "team", "prompt": "p", "every_s": 60}
        for bad, loc in (
            ({**good, "every_s": None, "cron": "not cron"}, "body.schedule.expr"),
            ({**good, "cron": "0 9 * * *"}, "body.schedule"),
            ({**good, "timezone": "Mars/Base"}, "body.schedule.timezone"),
            ({**good, "channel": "globex-hook"}, "body.channel"),  # another tenant's channel: unknown here
            ({**good, "agent": "nobody"}, "body.agent"),
            ({**good, "id": "../etc"}, "body.id"),
            ({**good, "surprise": 1}, "body.surprise"),
            ({k: v for k, v in good.items() if k != "prompt"}, "body.prompt"),
            ({**good, "prompt": "a\u0000b"}, "body.prompt"),  # PostgreSQL text cannot hold it: refused here
            ({**good, "every_s": 1e300}, "body.schedule.expr"),
        ):
            resp = await api.call("POST", "/tenants/acme/jobs", op, json=bad)
            assert resp.status_code == 422, (bad, resp.text)
            assert resp.json()["error"].startswith(loc), (loc, resp.json())
        resp = await api.call("POST", "/tenants/acme/jobs", op, content=b"{not json",
                              headers={"content-type": "application/json"})
        assert resp.status_code == 422
        assert api.publisher.published == []


async def test_pause_resume_cancel_find_the_tenants_job_and_publish_in_its_conversation() -> None:
    async with served_api() as api:
        api.jobs.jobs = [job("acme", "standup", "acme-hook"), job("globex", "report", "globex-hook")]
        op = await api.token("acme", "operator")
        for action in ("pause", "resume", "cancel"):
            resp = await api.call("POST", f"/tenants/acme/jobs/standup/{action}", op)
            assert resp.status_code == 202 and resp.json()["action"] == action
        assert [(c.data.action, c.conversation) for c in api.publisher.commands()] == [
            (a, "acme/acme-hook/standup") for a in ("pause", "resume", "cancel")]
        assert [a.data.action for a in api.publisher.audits()] == ["jobs.pause", "jobs.resume", "jobs.cancel"]
        resp = await api.call("POST", "/tenants/acme/jobs/report/pause", op)  # globex's job: not here
        assert resp.status_code == 404 and len(api.publisher.commands()) == 3


async def test_the_bus_down_is_a_503_and_nothing_is_said_to_be_accepted() -> None:
    async with served_api() as api:
        op = await api.token("acme", "operator")
        api.publisher.down = True
        resp = await api.call("POST", "/tenants/acme/jobs", op,
                              json={"channel": "acme-hook", "chat": "c", "prompt": "p", "every_s": 5})
        assert resp.status_code == 503 and "command_id" not in resp.text


async def test_admins_create_list_and_revoke_their_tenants_tokens() -> None:
    async with served_api() as api:
        admin = await api.token("acme", "admin")
        resp = await api.call("POST", "/tenants/acme/tokens", admin,
                              json={"name": "grafana", "role": "viewer", "expires_days": 30})
        assert resp.status_code == 201, resp.text
        created = resp.json()
        new = created.pop("token")
        assert (created["name"], created["role"], created["tenant"]) == ("grafana", "viewer", "acme")
        assert (await api.call("GET", "/me", new)).json()["name"] == "grafana"  # it works at once
        listed = (await api.call("GET", "/tenants/acme/tokens", admin)).json()
        assert {t["name"] for t in listed} == {"t", "grafana"} and "token" not in listed[0]
        resp = await api.call("DELETE", f"/tenants/acme/tokens/{created['id']}", admin)
        assert resp.status_code == 200 and resp.json()["revoked_at"] is not None
        assert (await api.call("GET", "/me", new)).status_code == 401
        assert [(a.data.action, a.data.target) for a in api.publisher.audits()] == [
            ("tokens.create", created["id"]), ("tokens.revoke", created["id"])]
        for bad in ({"name": "x", "role": "owner"}, {"name": "", "role": "viewer"},
                    {"name": "x", "role": "viewer", "expires_days": -1}):
            assert (await api.call("POST", "/tenants/acme/tokens", admin, json=bad)).status_code == 422
        owner_token = await api.token(None, "owner")
        owner_id = next(r.id for r, _ in api.tokens.rows.values() if r.role == "owner")
        assert (await api.call("DELETE", f"/tenants/acme/tokens/{owner_id}", admin)).status_code == 404
        assert (await api.call("GET", "/me", owner_token)).status_code == 200


async def test_the_audit_log_is_kept_once_per_event_and_listed_per_tenant() -> None:
    log = FakeAudit()
    recorder = AuditRecorder(log)
    e = audit_event(actor="cli", actor_name=None, tenant="acme", action="tokens.create", target="abc", outcome="ok")
    for _ in range(2):  # a redelivery changes nothing
        assert await recorder.keep_audit(e) == []
    assert len(log.events) == 1
    async with served_api() as api:
        api.audit.events = [e, audit_event(actor="cli", actor_name=None, tenant="globex", action="tokens.create",
                                           target="def", outcome="ok")]
        admin = await api.token("acme", "admin")
        listed = (await api.call("GET", "/audit", admin)).json()
        assert [x["target"] for x in listed] == ["abc"]
        assert (await api.call("GET", "/audit?tenant=globex", admin)).status_code == 404
        owner = await api.token(None, "owner")
        assert [x["target"] for x in (await api.call("GET", "/audit", owner)).json()] == ["def", "abc"]
        assert [x["target"] for x in (await api.call("GET", "/audit?tenant=globex&limit=1", owner)).json()] == ["def"]
        for bad in ("limit=0", "limit=x", "before=yesterday", "before=0.5", "before=1700000000", "tenant=BAD!"):
            resp = await api.call("GET", f"/audit?{bad}", owner)
            assert resp.status_code == 422 and resp.json()["problems"], bad


async def test_answers_the_fuzzer_found_wrong_are_documented_ones() -> None:
    """Found by tests/integration/test_api_fuzz.py: a 405 names every method of the path; a newline in a path
    parameter still reaches the API (its token check, its JSON answers); a body that is not UTF-8 is a 400."""
    async with served_api() as api:
        owner = await api.token(None, "owner")
        resp = await api.call("OPTIONS", "/agents/assistant", owner)
        assert resp.status_code == 405 and resp.headers["allow"] == "DELETE, PUT"
        assert (await api.call("GET", "/tenants/a%0Ab/jobs", None)).status_code == 401
        resp = await api.call("GET", "/tenants/a%0Ab/jobs", owner)
        assert resp.status_code in (404, 422) and resp.json()["error"]
        resp = await api.call("POST", "/tenants", owner, content=b"{\xc3(",
                              headers={"content-type": "application/json"})
        assert resp.status_code == 400 and resp.json()["error"]
        assert not api.publisher.commands()
