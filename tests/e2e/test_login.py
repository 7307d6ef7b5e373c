"""Logging in on the running platform: a CLI token exchanged for a JWT signed with the key of ingress's
PostgreSQL, a Feishu login against the fake provider (a browser-like client following the redirects), a
denied person, both logins in the audit log that ingress fills from the bus, and a key rotation by the CLI."""

from __future__ import annotations

import httpx
import jwt
import pytest

from tests.e2e.test_operator_api import cli, until
from tests.fakes.oauth_provider import FakeOAuthProvider
from tests.support.platform import Infra, base_config, run_platform

pytestmark = pytest.mark.e2e


async def test_jwt_exchange_feishu_login_audit_and_rotation_on_the_platform(infra: Infra,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_FEISHU_LOGIN", "login-secret")  # the services' and the CLI's (which reads the file)
    idp = await FakeOAuthProvider("cli_login", "login-secret").start()
    cfg = base_config()
    cfg["auth"] = {"providers": {"feishu": {"app_id": "cli_login", "app_secret": {"env": "TEST_FEISHU_LOGIN"},
                                            "authorize_url": f"{idp.url}/open-apis/authen/v1/authorize",
                                            "api_base_url": idp.url}},
                   "users": [{"provider": "feishu", "user_id": "ou_alice", "tenant": "acme", "role": "viewer"}]}
    try:
        async with run_platform(infra, cfg, services=("ingress",)) as p:
            api = p.ingress_url + "/api/v1"
            code, token, err = await cli(infra, p, "tokens", "create", "--name", "ops", "--tenant", "acme",
                                         "--role", "admin")
            assert code == 0, err
            async with httpx.AsyncClient(timeout=10) as c:
                resp = await c.post(api + "/auth/token", headers={"authorization": f"Bearer {token.strip()}"})
                assert resp.status_code == 200, resp.text
                admin_jwt = resp.json()["access_token"]
                me = await c.get(api + "/me", headers={"authorization": f"Bearer {admin_jwt}"})
                assert me.status_code == 200 and me.json()["role"] == "admin"

            idp.person = {"name": "Alice", "open_id": "ou_alice", "union_id": "on_alice"}
            async with httpx.AsyncClient(timeout=10, follow_redirects=True) as browser:
                login = await browser.get(api + "/auth/login/feishu")
                assert login.status_code == 200, login.text
                assert (login.json()["tenant"], login.json()["role"]) == ("acme", "viewer")
                idp.person = {"name": "Eve", "open_id": "ou_eve"}
                denied = await browser.get(api + "/auth/login/feishu")
                assert denied.status_code == 403
            async with httpx.AsyncClient(timeout=10) as c:
                viewer = {"authorization": f"Bearer {login.json()['access_token']}"}
                assert (await c.get(api + "/tenants/acme/jobs", headers=viewer)).status_code in (200, 503)
                assert (await c.get(api + "/audit", headers=viewer, params={"tenant": "acme"})).status_code == 403

                owner_code, owner, err = await cli(infra, p, "tokens", "create", "--name", "root", "--owner")
                assert owner_code == 0, err
                root = {"authorization": f"Bearer {owner.strip()}"}

                async def logins() -> list[tuple[str, str, str | None]]:
                    rows = (await c.get(api + "/audit", headers=root, params={"limit": 50})).json()
                    return [(r["actor"], r["outcome"], r["tenant"]) for r in rows if r["action"] == "login"]

                seen = await until(logins, lambda rows: len(rows) >= 2)
                assert sorted(seen) == [("feishu:ou_alice", "ok", "acme"), ("feishu:ou_eve", "denied", None)]

                old_kid = jwt.get_unverified_header(admin_jwt)["kid"]
                code, out, err = await cli(infra, p, "tokens", "rotate-signing-key")
                assert code == 0 and "is active" in out, err
                assert out.split()[2] != old_kid
                still = await c.get(api + "/me", headers={"authorization": f"Bearer {admin_jwt}"})
                assert still.status_code == 200  # the retired key verifies what it signed
    finally:
        await idp.stop()
