"""The identity providers of the login flow, each as its authorization-code flow is documented.

Feishu/Lark: the browser goes to ``accounts.feishu.cn/open-apis/authen/v1/authorize`` (with PKCE, S256);
the code is exchanged at ``POST /open-apis/authen/v2/oauth/token`` (JSON, RFC 6749 fields, ``code`` 0 on
success) and the person read from ``GET /open-apis/authen/v1/user_info``. DingTalk: the browser goes to
``login.dingtalk.com/oauth2/auth`` (DingTalk documents no PKCE: state only), comes back with ``authCode``,
which ``POST /v1.0/oauth2/userAccessToken`` exchanges; ``GET /v1.0/contact/users/me`` says who it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx

from agentbus.authconfig import OAuthProvider


@dataclass(frozen=True)
class Person:
    """Who the provider says logged in: its ids for the person (any may be named in auth.users), e-mail."""

    provider: str
    ids: tuple[str, ...]
    email: str | None
    name: str | None

    @property
    def actor(self) -> str:
        return f"{self.provider}:{self.ids[0]}"


class ProviderError(Exception):
    """The provider refused the code or could not be reached (answered 502 with the reason)."""


class IdentityProvider(Protocol):
    pkce: bool

    def authorize_url(self, redirect_uri: str, state: str, challenge: str) -> str: ...

    async def person(self, http: httpx.AsyncClient, code: str, redirect_uri: str, verifier: str) -> Person: ...


async def _call(http: httpx.AsyncClient, method: str, url: str, **kw: Any) -> Any:
    try:
        resp = await http.request(method, url, timeout=10.0, **kw)
    except httpx.HTTPError as exc:
        raise ProviderError(f"{url.split('?')[0]}: {type(exc).__name__}") from exc
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ProviderError(f"{url.split('?')[0]}: HTTP {resp.status_code}, not a JSON object")
    return resp.status_code, body


def _ids(*values: Any) -> tuple[str, ...]:
    return tuple(v for v in values if isinstance(v, str) and v)


@dataclass(frozen=True)
class Feishu:
    cfg: OAuthProvider
    pkce = True

    @property
    def _api(self) -> str:
        return (self.cfg.api_base_url or "https://open.feishu.cn").rstrip("/")

    def authorize_url(self, redirect_uri: str, state: str, challenge: str) -> str:
        base = self.cfg.authorize_url or "https://accounts.feishu.cn/open-apis/authen/v1/authorize"
        query = {"client_id": self.cfg.app_id, "redirect_uri": redirect_uri, "state": state,
                 "code_challenge": challenge, "code_challenge_method": "S256"}
        if self.cfg.scope:
            query["scope"] = self.cfg.scope
        return f"{base}?{urlencode(query)}"

    async def person(self, http: httpx.AsyncClient, code: str, redirect_uri: str, verifier: str) -> Person:
        status, token = await _call(http, "POST", f"{self._api}/open-apis/authen/v2/oauth/token", json={
            "grant_type": "authorization_code", "client_id": self.cfg.app_id,
            "client_secret": self.cfg.app_secret.value(), "code": code, "redirect_uri": redirect_uri,
            "code_verifier": verifier})
        access = token.get("access_token")
        if status != 200 or token.get("code", 0) != 0 or not isinstance(access, str):
            why = " ".join(str(token[k]) for k in ("error", "error_description", "msg") if token.get(k))
            raise ProviderError(f"feishu refused the code: {(why or f'HTTP {status}')[:200]}")
        status, info = await _call(http, "GET", f"{self._api}/open-apis/authen/v1/user_info",
                                   headers={"authorization": f"Bearer {access}"})
        data = info.get("data")
        if status != 200 or info.get("code") != 0 or not isinstance(data, dict):
            raise ProviderError(f"feishu user_info: {str(info.get('msg') or status)[:200]}")
        ids = _ids(data.get("user_id"), data.get("open_id"), data.get("union_id"))
        if not ids:
            raise ProviderError("feishu user_info names no user")
        email = data.get("enterprise_email") or data.get("email")
        return Person("feishu", ids, email if isinstance(email, str) and email else None,
                      data.get("name") if isinstance(data.get("name"), str) else None)


@dataclass(frozen=True)
class DingTalk:
    cfg: OAuthProvider
    pkce = False

    @property
    def _api(self) -> str:
        return (self.cfg.api_base_url or "https://api.dingtalk.com").rstrip("/")

    def authorize_url(self, redirect_uri: str, state: str, challenge: str) -> str:
        base = self.cfg.authorize_url or "https://login.dingtalk.com/oauth2/auth"
        query = {"redirect_uri": redirect_uri, "response_type": "code", "client_id": self.cfg.app_id,
                 "scope": self.cfg.scope or "openid", "state": state, "prompt": "consent"}
        return f"{base}?{urlencode(query)}"

    async def person(self, http: httpx.AsyncClient, code: str, redirect_uri: str, verifier: str) -> Person:
        status, token = await _call(http, "POST", f"{self._api}/v1.0/oauth2/userAccessToken", json={
            "clientId": self.cfg.app_id, "clientSecret": self.cfg.app_secret.value(), "code": code,
            "grantType": "authorization_code"})
        access = token.get("accessToken")
        if status != 200 or not isinstance(access, str):
            why = " ".join(str(token[k]) for k in ("code", "message") if token.get(k))
            raise ProviderError(f"dingtalk refused the code: {(why or f'HTTP {status}')[:200]}")
        status, me = await _call(http, "GET", f"{self._api}/v1.0/contact/users/me",
                                 headers={"x-acs-dingtalk-access-token": access})
        ids = _ids(me.get("unionId"), me.get("openId"))
        if status != 200 or not ids:
            raise ProviderError(f"dingtalk users/me: {str(me.get('message') or status)[:200]}")
        email = me.get("email")
        return Person("dingtalk", ids, email if isinstance(email, str) and email else None,
                      me.get("nick") if isinstance(me.get("nick"), str) else None)


def provider(name: str, cfg: OAuthProvider) -> IdentityProvider:
    return Feishu(cfg) if name == "feishu" else DingTalk(cfg)
