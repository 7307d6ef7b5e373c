"""The OAuth2 login through Feishu and DingTalk, against a fake provider speaking their authorization-code
flows over HTTP: a browser-like client follows the redirects; state, PKCE, the user mapping and the audit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from agentbus.config import ConfigError, parse_config
from tests.fakes.oauth_provider import FakeOAuthProvider, s256
from tests.unit.fakes_api import Api, served_api

ALICE = {"name": "Alice", "user_id": "u-alice", "open_id": "ou_alice", "union_id": "on_alice",
         "email": "alice@acme.example", "enterprise_email": "", "tenant_key": "t1"}
MALLORY = {"name": "Mallory", "user_id": "u-mallory", "open_id": "ou_mallory", "union_id": "on_mallory",
           "email": "mallory@elsewhere.example"}


def login_config(idp: str, users: list[dict[str, Any]]) -> dict[str, Any]:
    providers = {name: {"app_id": "cli_app", "app_secret": {"env": "AGENTBUS_TEST_IDP_SECRET"},
                        "authorize_url": f"{idp}{path}", "api_base_url": idp}
                 for name, path in (("feishu", "/open-apis/authen/v1/authorize"), ("dingtalk", "/oauth2/auth"))}
    return {"tenants": [{"id": "acme"}, {"id": "globex"}], "agents": [{"id": "assistant"}],
            "auth": {"providers": providers, "users": users, "jwt_ttl_s": 600}}


@asynccontextmanager
async def login_setup(monkeypatch: pytest.MonkeyPatch,
                      users: list[dict[str, Any]] | None = None) -> AsyncIterator[tuple[Api, FakeOAuthProvider]]:
    monkeypatch.setenv("AGENTBUS_TEST_IDP_SECRET", "idp-secret")
    idp = await FakeOAuthProvider("cli_app", "idp-secret").start()
    users = users if users is not None else [
        {"provider": "feishu", "email": "Alice@acme.example", "tenant": "acme", "role": "operator"},
        {"provider": "dingtalk", "user_id": "ding-union-bob", "tenant": "globex", "role": "admin"}]
    try:
        async with served_api(parse_config(login_config(idp.url, users))) as api:
            yield api, idp
    finally:
        await idp.stop()


async def test_a_feishu_login_follows_the_redirects_and_ends_with_a_jwt_of_the_mapped_role(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async with login_setup(monkeypatch) as (api, idp):
        idp.person = ALICE
        async with httpx.AsyncClient(follow_redirects=True, timeout=10) as browser:
            resp = await browser.get(api.url + "/auth/login/feishu")
        assert resp.status_code == 200, resp.text
        assert [str(r.url).split("?")[0] for r in resp.history] == [
            api.url + "/auth/login/feishu", idp.url + "/open-apis/authen/v1/authorize"]
        out = resp.json()
        assert (out["tenant"], out["role"], out["subject"]) == ("acme", "operator", "feishu:u-alice")
        assert 590 <= out["expires_in"] <= 600
        me = await api.call("GET", "/me", out["access_token"])
        assert me.status_code == 200 and (me.json()["tenant"], me.json()["role"]) == ("acme", "operator")

        (_, authorize), (_, grant) = idp.requests
        assert authorize["client_id"] == "cli_app" and authorize["code_challenge_method"] == "S256"
        assert authorize["redirect_uri"] == api.url + "/auth/callback/feishu" == grant["redirect_uri"]
        assert s256(grant["code_verifier"]) == authorize["code_challenge"]  # PKCE, checked by the provider too
        assert grant["client_secret"] == "idp-secret" and not idp.codes  # the code was used, once
        [audit] = api.publisher.audits()
        assert (audit.data.action, audit.data.outcome, audit.data.tenant, audit.data.actor) == (
            "login", "ok", "acme", "feishu:u-alice")


async def test_a_dingtalk_login_maps_the_union_id(monkeypatch: pytest.MonkeyPatch) -> None:
    async with login_setup(monkeypatch) as (api, idp):
        idp.person = {"nick": "Bob", "unionId": "ding-union-bob", "openId": "ding-open-bob"}
        async with httpx.AsyncClient(follow_redirects=True, timeout=10) as browser:
            resp = await browser.get(api.url + "/auth/login/dingtalk")
        assert resp.status_code == 200, resp.text
        assert (resp.json()["tenant"], resp.json()["role"]) == ("globex", "admin")
        (_, authorize), (_, grant) = idp.requests
        assert authorize["scope"] == "openid" and authorize["response_type"] == "code"
        assert grant["grantType"] == "authorization_code" and grant["clientId"] == "cli_app"
        assert [a.data.outcome for a in api.publisher.audits()] == ["ok"]


async def test_a_callback_whose_state_differs_from_the_browsers_login_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async with login_setup(monkeypatch) as (api, idp):
        idp.person = ALICE
        async with httpx.AsyncClient(timeout=10) as browser:
            start = await browser.get(api.url + "/auth/login/feishu")
            assert start.status_code == 302 and "agentbus_login" in start.cookies
            at_idp = await browser.get(start.headers["location"])
            assert at_idp.status_code == 302
            back = urlsplit(at_idp.headers["location"])
            query = {k: v[0] for k, v in parse_qs(back.query).items()}
            callback = f"{api.url}/auth/callback/feishu"
            wrong = await browser.get(callback, params={**query, "state": query["state"] + "x"})
            assert wrong.status_code == 400 and "state does not match" in wrong.json()["error"]
            # another browser (no cookie of this login) cannot finish it either
            async with httpx.AsyncClient(timeout=10) as other:
                stolen = await other.get(callback, params=query)
            assert stolen.status_code == 400 and "no login in progress" in stolen.json()["error"]
            assert idp.codes, "the code was never sent to the provider"
            cookie = start.cookies["agentbus_login"]
            ok = await browser.get(callback, params=query)
            assert ok.status_code == 200 and "agentbus_login" not in browser.cookies  # the login is over
            again = await browser.get(callback, params=query)
            assert again.status_code == 400 and "no login in progress" in again.json()["error"]
            async with httpx.AsyncClient(timeout=10, cookies={"agentbus_login": cookie}) as replayer:
                replay = await replayer.get(callback, params=query)  # a kept cookie: the code is used once
            assert replay.status_code == 502 and "invalid_grant" in replay.json()["error"]
        assert [a.data.outcome for a in api.publisher.audits()] == ["ok"]


async def test_a_person_not_in_auth_users_is_denied_and_the_denial_audited(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async with login_setup(monkeypatch) as (api, idp):
        idp.person = MALLORY
        async with httpx.AsyncClient(follow_redirects=True, timeout=10) as browser:
            resp = await browser.get(api.url + "/auth/login/feishu")
        assert resp.status_code == 403 and "feishu:u-mallory may not log in" in resp.json()["error"]
        assert "access_token" not in resp.text
        [audit] = api.publisher.audits()
        assert (audit.data.action, audit.data.outcome, audit.data.tenant, audit.data.actor) == (
            "login", "denied", None, "feishu:u-mallory")


async def test_an_unconfigured_provider_and_a_wrong_secret_are_clear_errors(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async with login_setup(monkeypatch) as (api, idp):
        resp = await api.client.get(api.url + "/auth/login/wecom")
        assert resp.status_code == 422
        idp.client_secret = "rotated-at-the-provider"
        idp.person = ALICE
        async with httpx.AsyncClient(follow_redirects=True, timeout=10) as browser:
            resp = await browser.get(api.url + "/auth/login/feishu")
        assert resp.status_code == 502 and "invalid_client" in resp.json()["error"]
        assert not api.publisher.audits()
    monkeypatch.setenv("AGENTBUS_TEST_IDP_SECRET", "s")
    no_providers = parse_config({"tenants": [{"id": "acme"}], "agents": [{"id": "a"}]})
    async with served_api(no_providers) as api:
        resp = await api.client.get(api.url + "/auth/login/feishu")
        assert resp.status_code == 404 and "auth.providers" in resp.json()["error"]


def test_the_auth_section_is_validated_naming_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTBUS_TEST_IDP_SECRET", raising=False)
    cfg = login_config("http://idp", [{"provider": "feishu", "user_id": "u", "tenant": "initech", "role": "admin"}])
    with pytest.raises(ConfigError) as err:
        parse_config(cfg)
    assert "auth.providers.feishu.app_secret: environment variable AGENTBUS_TEST_IDP_SECRET" in str(err.value)
    assert "auth.users[0].tenant: unknown tenant 'initech'" in str(err.value)
    monkeypatch.setenv("AGENTBUS_TEST_IDP_SECRET", "s")
    for user, reason in [({"provider": "feishu", "tenant": "acme", "role": "admin"}, "exactly one of user_id"),
                         ({"provider": "feishu", "user_id": "u", "role": "admin"}, "an owner has no tenant"),
                         ({"provider": "feishu", "user_id": "u", "tenant": "acme", "role": "root"}, "role")]:
        with pytest.raises(ConfigError, match=reason):
            parse_config(login_config("http://idp", [user]))
    cfg = login_config("http://idp", [{"provider": "dingtalk", "user_id": "u", "tenant": "acme", "role": "viewer"}])
    del cfg["auth"]["providers"]["dingtalk"]
    with pytest.raises(ConfigError, match=r"auth.users\[0\].provider: 'dingtalk' is not under auth.providers"):
        parse_config(cfg)
