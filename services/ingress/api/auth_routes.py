"""Logging in: an API token exchanged for a short-lived JWT, and the OAuth2 authorization-code login through
Feishu/Lark or DingTalk, which maps the person to a role by ``auth.users`` and answers with a JWT (or, for
a login started with ``then=console``, hands the JWT to the web console as its session).

The login holds no state in the replica: the state and the PKCE verifier travel in an HttpOnly cookie signed
with the platform's key (audience ``agentbus-login``, 10 minutes), so any replica can take the callback, and
the callback's ``state`` must match the cookie of the browser that started the login. Every login, allowed
or denied, is an ``audit.recorded`` event (action ``login``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from agentbus.authconfig import AuthConfig, AuthUser
from agentbus.events import utcnow
from agentbus.services.ingress.api.access import Unauthenticated
from agentbus.services.ingress.api.app import PREFIX, Access, PublishFailed, allow, deps_of
from agentbus.services.ingress.api.audit import audit_event
from agentbus.services.ingress.api.auth_jwt import LOGIN_AUDIENCE, JwtIdentity, Signer
from agentbus.services.ingress.api.auth_providers import Person, ProviderError
from agentbus.services.ingress.api.auth_providers import provider as identity_provider

log = structlog.get_logger("agentbus.ingress.api.auth")
router = APIRouter(tags=["auth"])
COOKIE = "agentbus_login"
LOGIN_TTL_S = 600
ProviderPath = Annotated[Literal["feishu", "dingtalk"], Path(description="the identity provider")]
Then = Annotated[Literal["api", "console"], Query(description="api: the callback answers the JWT as JSON; "
                                                  "console: it logs the browser in to the web console")]


class TokenIn(BaseModel):
    model_config = {"extra": "forbid"}

    ttl_s: int | None = Field(default=None, ge=60, le=43_200, description="default: auth.jwt_ttl_s (900)")


class JwtOut(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    tenant: str | None
    role: str
    subject: str


def _signer(request: Request) -> Signer:
    signer = deps_of(request).signer
    if signer is None:
        raise HTTPException(404, "JWTs are not enabled on this ingress")
    return signer


@router.post("/auth/token", name="auth.token", response_model=JwtOut)
async def exchange_token(request: Request, body: TokenIn | None = None,
                         access: Access = Depends(allow("viewer"))) -> JwtOut:
    """A JWT for the API token in the Authorization header (a JWT cannot be exchanged for a longer one)."""
    if isinstance(access.who, JwtIdentity):
        raise HTTPException(403, "a JWT cannot be exchanged; use an API token")
    ttl = (body.ttl_s if body and body.ttl_s else None) or access.deps.config.auth.jwt_ttl_s
    token, exp = await _signed(_signer(request).issue(access.who, ttl))
    log.info("jwt_issued", token=access.who.token_id, ttl_s=ttl)
    return _out(token, exp, access.who.tenant, access.who.role, access.who.actor)


async def _signed(signing: Awaitable[tuple[str, datetime]]) -> tuple[str, datetime]:
    try:
        return await signing
    except LookupError as exc:
        log.error("no_signing_key", error=str(exc))
        raise HTTPException(503, "no signing key; retry later") from exc


def _out(token: str, exp: datetime, tenant: str | None, role: str, subject: str) -> JwtOut:
    return JwtOut(access_token=token, expires_in=max(0, int((exp - utcnow()).total_seconds())), tenant=tenant,
                  role=role, subject=subject)


def _configured(request: Request, name: str) -> AuthConfig:
    auth = deps_of(request).config.auth
    if name not in auth.providers:
        raise HTTPException(404, f"no identity provider {name!r} configured (auth.providers)")
    return auth


def _redirect_uri(request: Request, auth: AuthConfig, name: str) -> str:
    if auth.public_url:
        return f"{auth.public_url}{PREFIX}/auth/callback/{name}"
    return str(request.url_for("auth.callback", provider=name))


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@router.get("/auth/login/{provider}", name="auth.login", status_code=302,
            responses={302: {"description": "to the provider's authorization page"}})
async def login(request: Request, provider: ProviderPath, then: Then = "api") -> RedirectResponse:
    """Starts a login: sends the browser to the provider with a fresh state (and PKCE challenge)."""
    auth = _configured(request, provider)
    if then == "console" and deps_of(request).login_handoff is None:
        raise HTTPException(404, "no web console on this ingress")
    idp = identity_provider(provider, auth.providers[provider])
    state, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    cookie, _ = await _signed(_signer(request).sign(
        {"sub": "login", "state": state, "verifier": verifier, "provider": provider, "then": then}, LOGIN_AUDIENCE,
        LOGIN_TTL_S))
    redirect_uri = _redirect_uri(request, auth, provider)
    resp = RedirectResponse(idp.authorize_url(redirect_uri, state, _challenge(verifier)), status_code=302)
    secure = redirect_uri.startswith("https://")
    resp.set_cookie(COOKIE, cookie, max_age=LOGIN_TTL_S, path=f"{PREFIX}/auth/callback/", httponly=True,
                    secure=secure, samesite="lax")
    return resp


@router.get("/auth/callback/{provider}", name="auth.callback", response_model=JwtOut,
            responses={400: {"description": "no login in progress, or its state does not match"},
                       502: {"description": "the identity provider refused the code or is unreachable"}})
async def callback(request: Request, response: Response, provider: ProviderPath,
                   code: Annotated[str | None, Query(max_length=512)] = None,
                   auth_code: Annotated[str | None, Query(alias="authCode", max_length=512)] = None,
                   state: Annotated[str | None, Query(max_length=512)] = None,
                   error: Annotated[str | None, Query(max_length=200)] = None) -> Any:
    """Where the provider sends the browser back: checks the state, exchanges the code, maps the person."""
    auth = _configured(request, provider)
    signer = _signer(request)
    pending = await _pending(signer, request.cookies.get(COOKIE), provider)
    response.delete_cookie(COOKIE, path=f"{PREFIX}/auth/callback/")  # whatever follows, this login is over
    if state is None or not hmac.compare_digest(state.encode(), str(pending["state"]).encode()):
        raise HTTPException(400, "state does not match the login in progress")
    if error:
        raise HTTPException(400, f"the provider did not authorize: {error[:100]}")
    given = code or auth_code
    if not given:
        raise HTTPException(400, "no authorization code")
    http = deps_of(request).http
    if http is None:
        raise HTTPException(503, "no HTTP client for the identity providers")
    idp = identity_provider(provider, auth.providers[provider])
    try:
        person = await idp.person(http, given, _redirect_uri(request, auth, provider),
                                  str(pending["verifier"]))
    except ProviderError as exc:
        log.warning("login_provider_failed", provider=provider, error=str(exc)[:300])
        raise HTTPException(502, str(exc)) from exc
    user = match(auth, person)
    if user is None:
        await _audit(request, person, None, "denied", "not listed in auth.users")
        raise HTTPException(403, f"{person.actor} may not log in (not listed in auth.users)")
    who = JwtIdentity(token_id="", name=person.name or person.actor, tenant=user.tenant, role=user.role,
                      subject=person.actor)
    try:
        await _audit(request, person, user.tenant, "ok", user.role, strict=True)
    except PublishFailed as exc:
        raise HTTPException(503, "the login could not be audited; retry later") from exc
    token, exp = await _signed(signer.issue(who, auth.jwt_ttl_s))
    resp_out = _out(token, exp, user.tenant, user.role, person.actor)
    log.info("login", provider=provider, actor=person.actor, tenant=user.tenant, role=user.role)
    handoff = deps_of(request).login_handoff
    if pending.get("then") == "console" and handoff is not None:
        answer = handoff(request, token, exp)
        for key, value in response.headers.items():  # the login cookie's deletion
            if key == "set-cookie":
                answer.headers.append(key, value)
        return answer
    return resp_out


async def _pending(signer: Signer, cookie: str | None, name: str) -> dict[str, object]:
    if not cookie:
        raise HTTPException(400, f"no login in progress (start at {PREFIX}/auth/login/{name})")
    try:
        claims = await signer.verify(cookie, LOGIN_AUDIENCE)
    except Unauthenticated as why:
        raise HTTPException(400, f"the login in progress is not valid: {why}") from None
    if claims.get("provider") != name:
        raise HTTPException(400, "the login in progress is for another provider")
    return claims


def match(auth: AuthConfig, person: Person) -> AuthUser | None:
    """The first auth.users entry naming this person (by any of the provider's ids, or by e-mail)."""
    email = person.email.casefold() if person.email else None
    for user in auth.users:
        if user.provider != person.provider:
            continue
        if user.user_id is not None and user.user_id in person.ids:
            return user
        if user.email is not None and email is not None and user.email.casefold() == email:
            return user
    return None


async def _audit(request: Request, person: Person, tenant: str | None, outcome: str, detail: str,
                 strict: bool = False) -> None:
    event = audit_event(actor=person.actor, actor_name=person.name, tenant=tenant, action="login",
                        target=person.provider, outcome=outcome, detail=detail)
    try:
        await deps_of(request).publisher.publish([event])
    except Exception as exc:
        log.error("audit_not_published", action="login", error=f"{type(exc).__name__}: {exc}"[:300])
        if strict:
            raise PublishFailed(str(exc)) from exc
