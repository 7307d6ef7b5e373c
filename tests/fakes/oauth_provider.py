"""A fake identity provider that speaks Feishu's and DingTalk's authorization-code flows over real HTTP.

Feishu: ``GET /open-apis/authen/v1/authorize`` (client_id, redirect_uri, state, code_challenge S256) logs the
``person`` in and redirects to ``redirect_uri?code=..&state=..``; ``POST /open-apis/authen/v2/oauth/token``
takes the JSON grant (client secret, one-time code, same redirect_uri, the PKCE verifier whose S256 is the
challenge) and answers RFC 6749 fields with ``code`` 0 (an error: ``code`` 20050, ``error`` and
``error_description``, HTTP 400); ``GET /open-apis/authen/v1/user_info`` reads the Bearer user token.
DingTalk: ``GET /oauth2/auth`` redirects with ``authCode`` and ``state``; ``POST /v1.0/oauth2/userAccessToken``
(clientId, clientSecret, code, grantType) answers ``accessToken``/``expireIn``; ``GET /v1.0/contact/users/me``
reads ``x-acs-dingtalk-access-token``. Codes live 5 minutes and are used once, as documented.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from agentbus.http import LoopbackServer


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str | None
    person: dict[str, Any]


@dataclass
class FakeOAuthProvider:
    client_id: str
    client_secret: str
    person: dict[str, Any] = field(default_factory=dict)  # who logs in at the authorization page next
    codes: dict[str, Grant] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (path, query or body)
    server: LoopbackServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    async def start(self) -> FakeOAuthProvider:
        self.server = LoopbackServer([
            Route("/open-apis/authen/v1/authorize", self.feishu_authorize),
            Route("/open-apis/authen/v2/oauth/token", self.feishu_token, methods=["POST"]),
            Route("/open-apis/authen/v1/user_info", self.feishu_user_info),
            Route("/oauth2/auth", self.dingtalk_authorize),
            Route("/v1.0/oauth2/userAccessToken", self.dingtalk_token, methods=["POST"]),
            Route("/v1.0/contact/users/me", self.dingtalk_me),
        ])
        await self.server.start()
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()

    def _authorize(self, request: Request, pkce: bool) -> tuple[str, str] | Response:
        q = dict(request.query_params)
        self.requests.append((request.url.path, q))
        if q.get("client_id") != self.client_id or not q.get("redirect_uri"):
            return JSONResponse({"error": "invalid_client"}, status_code=400)
        challenge = None
        if pkce:
            if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
                return JSONResponse({"error": "invalid_request", "error_description": "PKCE S256 needed"}, 400)
            challenge = q["code_challenge"]
        code = secrets.token_hex(16)
        self.codes[code] = Grant(self.client_id, q["redirect_uri"], challenge, dict(self.person))
        return code, q["redirect_uri"]

    async def feishu_authorize(self, request: Request) -> Response:
        got = self._authorize(request, pkce=True)
        if isinstance(got, Response):
            return got
        code, redirect = got
        query = {"code": code, "state": request.query_params.get("state", "")}
        return RedirectResponse(f"{redirect}?{urlencode(query)}", status_code=302)

    async def dingtalk_authorize(self, request: Request) -> Response:
        if request.query_params.get("response_type") != "code":
            return JSONResponse({"code": "invalidParameter", "message": "response_type"}, status_code=400)
        got = self._authorize(request, pkce=False)
        if isinstance(got, Response):
            return got
        code, redirect = got
        query = {"authCode": code, "code": code, "state": request.query_params.get("state", "")}
        return RedirectResponse(f"{redirect}?{urlencode(query)}", status_code=302)

    def _redeem(self, code: Any, redirect_uri: Any | None) -> Grant | None:
        grant = self.codes.pop(code, None) if isinstance(code, str) else None  # once only
        if grant is None or (redirect_uri is not None and redirect_uri != grant.redirect_uri):
            return None
        return grant

    def _token_for(self, grant: Grant) -> str:
        token = "u-" + secrets.token_hex(16)
        self.tokens[token] = grant.person
        return token

    async def feishu_token(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append((request.url.path, body))
        if body.get("grant_type") != "authorization_code":
            return _feishu_error(20001, "unsupported_grant_type", "grant_type")
        if body.get("client_id") != self.client_id or body.get("client_secret") != self.client_secret:
            return _feishu_error(20002, "invalid_client", "client_id or client_secret is wrong")
        grant = self._redeem(body.get("code"), body.get("redirect_uri"))
        if grant is None:
            return _feishu_error(20003, "invalid_grant", "the code is invalid, used or its redirect_uri differs")
        verifier = body.get("code_verifier")
        if grant.challenge is not None and (not isinstance(verifier, str) or s256(verifier) != grant.challenge):
            return _feishu_error(20050, "invalid_grant", "code_verifier does not match code_challenge")
        return JSONResponse({"code": 0, "access_token": self._token_for(grant), "expires_in": 7200,
                             "token_type": "Bearer", "scope": "auth:user.id:read"})

    async def feishu_user_info(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        person = self.tokens.get(token) if scheme == "Bearer" else None
        if person is None:
            return JSONResponse({"code": 99991668, "msg": "Invalid access token for authorization."}, 401)
        return JSONResponse({"code": 0, "msg": "success", "data": person})

    async def dingtalk_token(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append((request.url.path, body))
        if body.get("clientId") != self.client_id or body.get("clientSecret") != self.client_secret:
            return JSONResponse({"code": "invalidClient", "message": "clientId or clientSecret"}, 400)
        grant = self._redeem(body.get("code"), None) if body.get("grantType") == "authorization_code" else None
        if grant is None:
            return JSONResponse({"code": "invalidAuthCode", "message": "the code is invalid or used"}, 400)
        return JSONResponse({"accessToken": self._token_for(grant), "refreshToken": secrets.token_hex(8),
                             "expireIn": 7200, "corpId": "ding-corp"})

    async def dingtalk_me(self, request: Request) -> Response:
        person = self.tokens.get(request.headers.get("x-acs-dingtalk-access-token", ""))
        if person is None:
            return JSONResponse({"code": "InvalidAuthentication", "message": "token invalid"}, 401)
        return JSONResponse(person)


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _feishu_error(code: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"code": code, "error": error, "error_description": description}, status_code=400)
