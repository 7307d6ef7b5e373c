"""Tenant isolation, for every route the app has (a new endpoint is covered without touching this file).

A token of tenant globex, even its admin's, gets 404 for each of acme's resources (as if they did not
exist), and nothing is published but an audit of the refusal under globex; without a token every route is
a 401. Routes without a tenant in the path either take ``?tenant=`` (then acme is a 404) or answer only
what globex may see: the answer never names acme.
"""

from __future__ import annotations

import re

from fastapi.routing import APIRoute, iter_route_contexts

from agentbus.services.ingress.api.app import PREFIX
from tests.unit.fakes_api import Api, job, served_api

# the document is public (it is committed to the repository); the login flow starts without a token
PUBLIC = {"/openapi.json", "/auth/login/{provider}", "/auth/callback/{provider}"}
NOT_WRITES = {"auth.token"}  # a POST that changes nothing: any role may exchange its token for a JWT
BODIES = {  # valid bodies, so that what answers is the access check, not the validation
    "jobs.create": {"channel": "acme-hook", "chat": "team", "prompt": "p", "every_s": 60},
    "tokens.create": {"name": "x", "role": "viewer"},
    "agents.put": {"id": "assistant", "model": "echo"},
    "models.put": {"name": "fake", "base_url": "http://127.0.0.1:9/v1", "model": "m"},
    "tenants.put": {"id": "acme"},
    "tenants.create": {"id": "initech"},
    "channels.put": {"type": "webhook", "agent": "assistant", "secret": {"env": "X", "default": "y"}},
    "config.replace": {"document": {"tenants": [{"id": "acme"}], "agents": [{"id": "assistant"}]}},
    "replay.start": {"from": "context"},
}


def routes(api: Api) -> list[tuple[str, str, APIRoute]]:
    out = []
    for ctx in iter_route_contexts(api.app.routes):  # the routes of every included router, flattened
        route = ctx.original_route
        if ctx.path in PUBLIC:
            continue
        assert isinstance(route, APIRoute) and ctx.path is not None and ctx.methods, ctx
        for method in sorted(ctx.methods):
            out.append((method, ctx.path, route))
    return out


def concrete(path: str, acme_token_id: str) -> str:
    values = {"tenant": "acme", "job_id": "standup", "token_id": acme_token_id, "agent": "assistant",
              "model": "fake", "channel": "acme-hook", "letter_id": "7d4f2a52-3f0e-4a57-9a2e-1b2c3d4e5f60",
              "run": "replay-acme", "conversation": "acme/acme-hook/team",
              "correlation_id": "7b0c3a52-1d8e-4f4e-9a3c-2f1e5d6c7b8a",
              "memory_id": "5a1f0c2e-8b7d-4c3a-9e6f-0d1c2b3a4f5e",
              "document_id": "7c2e9a41-3b5d-4f60-8a1e-2d3c4b5a6f70"}
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values[m.group(1)], path)


def needs(route: APIRoute) -> str:
    """The role the route's ``allow`` dependency asks for."""
    found = [d.call.needs for d in route.dependant.dependencies if hasattr(d.call, "needs")]
    assert len(found) == 1, route.name
    return str(found[0])


def takes_tenant_query(route: APIRoute) -> bool:
    return any(p.name == "tenant" for p in route.dependant.query_params)


async def test_every_route_hides_another_tenants_resources_and_needs_a_token() -> None:
    async with served_api() as api:
        api.jobs.jobs = [job("acme", "standup", "acme-hook")]
        await api.token("acme", "admin", name="acme-admin")
        acme_token_id = next(iter(api.tokens.rows))
        globex = await api.token("globex", "admin", name="globex-admin")
        walked = routes(api)
        assert {r.name for _, _, r in walked} >= {"jobs.create", "jobs.pause", "tokens.revoke", "audit.list"}
        for method, path, route in walked:
            url = concrete(path, acme_token_id)
            body = BODIES.get(route.name)
            resp = await api.call(method, url, None, json=body)
            assert resp.status_code == 401, (method, url, resp.text)
            assert resp.headers["www-authenticate"].startswith("Bearer")
            resp = await api.call(method, url, None, content=b"{not json", headers={"content-type": "application/json"})
            assert resp.status_code == 401, (method, url, resp.text)  # checked before the body is read

            if "{tenant}" in path:
                resp = await api.call(method, url, globex, json=body)
                assert resp.status_code == 404, (method, url, resp.status_code, resp.text)
                assert "no tenant 'acme'" in resp.json()["error"]
            elif takes_tenant_query(route):
                resp = await api.call(method, url, globex, params={"tenant": "acme"}, json=body)
                assert resp.status_code == 404, (method, url, resp.text)
            elif needs(route) == "owner":  # platform-wide (agents, models, the configuration): owners only
                resp = await api.call(method, url, globex, json=body)
                assert resp.status_code == 403, (method, url, resp.text)
                assert "acme" not in resp.text.lower(), (method, url, resp.text)
            else:
                resp = await api.call(method, url, globex, json=body)
                assert resp.status_code == 200, (method, url, resp.text)
                assert "acme" not in resp.text.lower(), (method, url, resp.text)

        assert all(e.TYPE == "audit.recorded" for e in api.publisher.published), "a command was published"
        assert {(e.data.tenant, e.data.outcome, e.data.actor_name) for e in api.publisher.published} <= {
            ("globex", "denied", "globex-admin")}
        writes = [r for m, _, r in walked if m != "GET" and ("{tenant}" in r.path or needs(r) == "owner")]
        assert len(api.publisher.published) == len(writes)  # each refused write audited, once
        assert len(api.tokens.rows) == 2 and all(r.revoked_at is None for r, _ in api.tokens.rows.values())


async def test_a_tenant_viewer_is_refused_every_write_of_its_own_tenant() -> None:
    async with served_api() as api:
        api.jobs.jobs = [job("acme", "standup", "acme-hook")]
        viewer = await api.token("acme", "viewer")
        acme_token_id = next(iter(api.tokens.rows))
        for method, path, route in routes(api):
            if method == "GET" or route.name in NOT_WRITES:
                continue
            resp = await api.call(method, concrete(path, acme_token_id), viewer, json=BODIES.get(route.name))
            assert resp.status_code == 403, (method, path, resp.text)
        assert not api.publisher.commands()


def test_the_api_is_mounted_under_its_prefix() -> None:
    assert PREFIX == "/api/v1"
