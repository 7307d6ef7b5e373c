"""The operator API's bearer tokens and roles, over a real loopback server with fake stores."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agentbus.events import utcnow
from agentbus.services.ingress.api.access import Identity, authenticate, mint, token_hash
from agentbus.services.ingress.api.ports import TokenRecord
from tests.unit.fakes_api import FakeTokens, served_api


async def test_a_token_is_stored_only_as_the_hash_of_the_whole_token() -> None:
    record, token = mint("ci", "acme", "operator", expires_days=2)
    assert token.startswith(f"agb_{record.id}_") and len(token) > 50
    store = FakeTokens()
    await store.create(record, token_hash(token))
    [(stored, digest)] = store.rows.values()
    assert digest == token_hash(token) and token.split("_", 2)[2] not in repr(stored)
    assert stored.expires_at is not None and stored.expires_at - stored.created_at == timedelta(days=2)
    who = await authenticate(store, token)
    assert who == Identity(record.id, "ci", "acme", "operator", stored.expires_at) and store.touched == [record.id]
    with pytest.raises(ValueError):
        mint("x", None, "admin")  # a tenant role needs a tenant
    with pytest.raises(ValueError):
        mint("x", "acme", "owner")  # an owner has none


@pytest.mark.parametrize(("header", "reason"), [
    (None, "missing bearer token"),
    ("Basic dXNlcjpwdw==", "must be: Bearer <token>"),
    ("Bearer nonsense", "malformed token"),
    ("Bearer agb_0123456789ab_" + "x" * 43, "unknown token"),
])
async def test_no_identity_is_a_401_with_the_reason_and_the_challenge(header: str | None, reason: str) -> None:
    async with served_api() as api:
        headers = {"authorization": header} if header else {}
        resp = await api.client.get(api.url + "/me", headers=headers)
        assert resp.status_code == 401 and reason in resp.json()["error"]
        assert resp.headers["www-authenticate"].startswith("Bearer")


async def test_revoked_and_expired_tokens_are_refused() -> None:
    async with served_api() as api:
        token = await api.token("acme", "viewer")
        assert (await api.call("GET", "/me", token)).status_code == 200
        [record_id] = api.tokens.rows
        await api.tokens.revoke(record_id)
        resp = await api.call("GET", "/me", token)
        assert resp.status_code == 401 and resp.json()["error"] == "token revoked"

        record, expired = mint("old", "acme", "admin")
        past = TokenRecord(**{**vars(record), "expires_at": utcnow() - timedelta(seconds=1)})
        await api.tokens.create(past, token_hash(expired))
        resp = await api.call("GET", "/me", expired)
        assert resp.status_code == 401 and resp.json()["error"] == "token expired"


async def test_roles_rank_admin_over_operator_over_viewer_and_owner_over_all() -> None:
    async with served_api() as api:
        body = {"channel": "acme-hook", "chat": "standup", "prompt": "standup?", "every_s": 60}
        for role, jobs_status, tokens_status in (("viewer", 403, 403), ("operator", 202, 403), ("admin", 202, 200)):
            token = await api.token("acme", role)  # type: ignore[arg-type]
            assert (await api.call("GET", "/tenants/acme/jobs", token)).status_code == 200
            resp = await api.call("POST", "/tenants/acme/jobs", token, json=body)
            assert resp.status_code == jobs_status, resp.text
            assert (await api.call("GET", "/tenants/acme/tokens", token)).status_code == tokens_status
        owner = await api.token(None, "owner")
        for tenant in ("acme", "globex"):
            assert (await api.call("GET", f"/tenants/{tenant}/tokens", owner)).status_code == 200
        assert (await api.call("POST", "/tenants/globex/jobs", owner, json={**body, "channel": "globex-hook"})
                ).status_code == 202
        resp = await api.call("GET", "/tenants/nowhere/jobs", owner)
        assert resp.status_code == 404 and "no tenant 'nowhere'" in resp.json()["error"]


async def test_a_refused_write_is_audited_under_the_callers_tenant_and_publishes_no_command() -> None:
    async with served_api() as api:
        viewer = await api.token("acme", "viewer", name="dashboard")
        resp = await api.call("POST", "/tenants/acme/jobs", viewer,
                              json={"channel": "acme-hook", "chat": "c", "prompt": "p", "every_s": 5})
        assert resp.status_code == 403 and "operator" in resp.json()["error"]
        [audit] = api.publisher.published
        assert audit.TYPE == "audit.recorded"
        d = audit.data
        assert (d.actor_name, d.tenant, d.action, d.outcome, d.detail) == (
            "dashboard", "acme", "jobs.create", "denied", "needs role operator")
        # a read that is refused is not a write: answered, logged, not audited
        assert (await api.call("GET", "/tenants/acme/tokens", viewer)).status_code == 403
        assert len(api.publisher.published) == 1


async def test_the_token_store_down_is_a_503_never_a_500() -> None:
    async with served_api() as api:
        token = await api.token("acme", "viewer")
        api.tokens.down = True
        resp = await api.call("GET", "/me", token)
        assert resp.status_code == 503 and "retry" in resp.json()["error"]
