"""The operator API as a FastAPI app, mounted by ingress at ``/api/v1``; the bearer-token dependency and the
access check every endpoint declares.

An endpoint says what it needs in one place, its signature: ``access: Access = Depends(allow("operator"))``.
``allow`` authenticates the token (401 with the reason), hides another tenant's resources (404, as if they
did not exist), refuses a role that is too low (403), and audits every refused write. Resource modules
each export ``router``; ``ROUTERS`` below is the list of them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import structlog
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Mount, compile_path, get_route_path
from starlette.types import ASGIApp, Receive, Scope, Send

from agentbus.config import PlatformConfig
from agentbus.events import Event
from agentbus.liveconfig import LiveConfig
from agentbus.services.ingress.api.access import Identity, Unauthenticated, authenticate
from agentbus.services.ingress.api.audit import audit_event
from agentbus.services.ingress.api.auth_jwt import Signer, looks_like_jwt
from agentbus.services.ingress.api.eventlog import DeadLetterStore, LogUnavailable, ReplayLog
from agentbus.services.ingress.api.ports import (
    AuditLog,
    ChannelStatesReader,
    ConfigWriting,
    JobsReader,
    JobsUnavailable,
    ModelsHealthReader,
    Publisher,
    Reads,
    Role,
    StoreUnavailable,
    TokenStore,
)

log = structlog.get_logger("agentbus.ingress.api")
PREFIX = "/api/v1"
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass
class ApiDeps:
    config: PlatformConfig
    tokens: TokenStore
    audit: AuditLog
    jobs: JobsReader
    publisher: Publisher
    models_health: ModelsHealthReader | None = None  # the reasoner's view of its models
    signer: Signer | None = None  # JWTs (None: API tokens only)
    http: httpx.AsyncClient | None = None  # to the identity providers of the login flow
    config_writer: ConfigWriting | None = None  # publishes new versions of the configuration
    live: LiveConfig | None = None  # the version this replica runs (``config`` reads through it)
    dead_letters: DeadLetterStore | None = None  # the dead-letter topic (None: not served)
    replays: ReplayLog | None = None  # replay runs, read from the event log (None: not served)
    reads: Reads | None = None  # conversations, deliveries, inferences, traces (history_routes)
    channel_states: ChannelStatesReader | None = None  # what every replica sees of its channels
    # a login started with ``then=console``: the web console's answer to a person it logged in (None: refused)
    login_handoff: Callable[[Request, str, datetime], Response] | None = None


class Error(BaseModel):
    error: str
    problems: list[dict[str, Any]] | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Error, "description": "a body that cannot be read at all (not UTF-8 JSON)"},
    401: {"model": Error, "description": "missing, unknown, revoked or expired token"},
    403: {"model": Error, "description": "the token's role does not allow this"},
    404: {"model": Error, "description": "no such resource (or one of another tenant)"},
    422: {"model": Error, "description": "invalid input; `problems` names each field"},
    503: {"model": Error, "description": "a store or service behind the API is unavailable; retry later"},
}


@dataclass(frozen=True)
class Access:
    """An allowed request: who asks, the tenant of the path (if any), the action's name, and the ports."""

    who: Identity
    tenant: str | None
    action: str
    deps: ApiDeps

    async def publish(self, commands: Sequence[Event], target: str, detail: str = "") -> None:
        """Publish the write's commands together with its audit event (acks=all for both)."""
        audit = audit_event(actor=self.who.actor, actor_name=self.who.name, tenant=self.tenant,
                            action=self.action, target=target, outcome="ok", detail=detail)
        try:
            await self.deps.publisher.publish([*commands, audit])
        except Exception as exc:  # nothing was acknowledged: the caller may retry (command ids are new)
            log.error("api_publish_failed", action=self.action, error=f"{type(exc).__name__}: {exc}"[:300])
            raise PublishFailed(str(exc)) from exc


class PublishFailed(Exception):
    """The bus did not acknowledge a write's command."""


def deps_of(request: Request) -> ApiDeps:
    deps: ApiDeps = request.app.state.deps
    return deps


bearer = HTTPBearer(auto_error=False, description="an API token: agb_<id>_<secret> (`agentbus tokens create`), "
                                                   "or a JWT from POST /auth/token or a login")


PUBLIC = frozenset({"/openapi.json"})  # the document is public: it is committed to the repository
# the login flow: a person arrives without a token, sent by the identity provider
PUBLIC_PREFIXES = ("/auth/login/", "/auth/callback/")


def is_public(path: str) -> bool:
    return path in PUBLIC or path.startswith(PUBLIC_PREFIXES)


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be: Bearer <token>")
    return token.strip()


class BearerAuth:
    """Authenticates every request before anything else reads it (its body included), so a request without
    a valid token learns nothing but 401, whatever it sends; the identity is put in the request's state."""

    def __init__(self, app: ASGIApp, tokens: TokenStore, signer: Signer | None = None) -> None:
        self._app = app
        self._tokens = tokens
        self._signer = signer

    async def _identify(self, header: str | None) -> Identity:
        token = bearer_token(header)
        if token and self._signer is not None and looks_like_jwt(token):
            return await self._signer.identity(token)
        return await authenticate(self._tokens, token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        root, path = scope.get("root_path", ""), scope["path"]
        if is_public(path.removeprefix(root)):
            await self._app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            who = await self._identify(headers.get("authorization"))
        except Unauthenticated as why:
            log.info("api_unauthenticated", path=path[:200], reason=str(why))
            response: JSONResponse = JSONResponse({"error": str(why)}, status_code=401,
                                                  headers={"WWW-Authenticate": 'Bearer realm="agentbus"'})
            await response(scope, receive, send)
            return
        except StoreUnavailable as exc:
            log.warning("api_backend_unavailable", error=str(exc)[:300])
            await JSONResponse({"error": "temporarily unavailable; retry later"}, status_code=503)(
                scope, receive, send)
            return
        scope.setdefault("state", {})["identity"] = who
        await self._app(scope, receive, send)


async def identity(request: Request, _: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Identity:
    """The identity ``BearerAuth`` established (the ``bearer`` dependency puts the scheme in the document)."""
    who = getattr(request.state, "identity", None)
    if not isinstance(who, Identity):  # pragma: no cover - BearerAuth answers every request without one
        raise _unauthorized("missing bearer token")
    return who


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(401, reason, headers={"WWW-Authenticate": 'Bearer realm="agentbus"'})


def _action(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "name", None) or request.url.path[:100]


def allow(need: Role) -> Callable[..., Awaitable[Access]]:
    """The dependency of an endpoint that needs role ``need`` (of the path's ``{tenant}``, when it has one)."""

    async def check(request: Request, who: Identity = Depends(identity)) -> Access:
        deps = deps_of(request)
        tenant = request.path_params.get("tenant")
        action = _action(request)
        known = tenant is None or any(t.id == tenant for t in deps.config.tenants)
        if tenant is not None and (not known or not who.sees(tenant)):
            await _denied(request, who, None, action, "not found")
            raise HTTPException(404, f"no tenant {tenant[:64]!r}")
        allowed = who.may(tenant, need) if tenant is not None else _platform_may(who, need)
        if not allowed:
            await _denied(request, who, tenant, action, f"needs role {need}")
            raise HTTPException(403, f"this needs the {need} role; the token has {who.role}")
        return Access(who, tenant, action, deps)

    check.needs = need  # type: ignore[attr-defined]  # read by the tests that walk every route
    return check


def _platform_may(who: Identity, need: Role) -> bool:
    """An endpoint without a tenant in its path: owners may anything; others as their role allows in their
    own tenant (the endpoint itself then limits what they see to it)."""
    return who.role == "owner" or (need != "owner" and who.tenant is not None and who.may(who.tenant, need))


async def _denied(request: Request, who: Identity, tenant: str | None, action: str, detail: str) -> None:
    """A refused write is audited under a tenant the caller may see (never the one hidden from it)."""
    log.info("api_denied", token=who.token_id, action=action, detail=detail)
    if request.method not in WRITES:
        return
    event = audit_event(actor=who.actor, actor_name=who.name, tenant=tenant or who.tenant, action=action,
                        target=request.url.path[:300], outcome="denied", detail=detail)
    try:
        await deps_of(request).publisher.publish([event])
    except Exception as exc:  # the answer is a refusal either way; say in the log that its audit is missing
        log.error("audit_not_published", action=action, error=f"{type(exc).__name__}: {exc}"[:300])


def _problems(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [{"loc": ".".join(str(p) for p in e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method of the path: Starlette's 405 names only those of the first route that matched it, when
    the path's methods are routes of their own (PUT and DELETE of one resource)."""
    path = get_route_path(scope)
    methods: set[str] = set()
    for ctx in iter_route_contexts(app.router.routes):  # the included routers' routes, flattened
        if ctx.path is not None and ctx.methods and compile_path(ctx.path)[0].match(path):
            methods |= set(ctx.methods)
    return sorted(methods)


def api_mount(app: ASGIApp) -> Mount:
    """The API at ``PREFIX``, for every path under it: Starlette's mount pattern stops at a newline (``%0A`` in
    a path parameter), which would leave the request to the outer app's plain-text 404, past the token check."""
    mount = Mount(PREFIX, app=app)
    mount.path_regex = re.compile(mount.path_regex.pattern, re.DOTALL)
    return mount


def operator_api(deps: ApiDeps) -> FastAPI:
    from agentbus import __version__
    from agentbus.services.ingress.api.routes import ROUTERS

    app = FastAPI(title="agentbus operator API", version=__version__, openapi_url="/openapi.json",
                  docs_url=None, redoc_url=None, servers=[{"url": PREFIX}], root_path_in_servers=False,
                  description="Tenants, agents, channels, models, jobs, tokens and the audit log of an agentbus "
                              "platform. Authenticate with `Authorization: Bearer <API token>`.")
    app.state.deps = deps
    app.add_middleware(BearerAuth, tokens=deps.tokens, signer=deps.signer)
    for router in ROUTERS:
        app.include_router(router, responses=ERRORS)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = exc.detail if isinstance(exc.detail, dict) else {"error": exc.detail}  # dict: error and problems
        headers = exc.headers
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(app, request.scope))}
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = _problems(exc)
        first = problems[0] if problems else {"loc": "request", "msg": "invalid"}
        return JSONResponse({"error": f"{first['loc']}: {first['msg']}", "problems": problems}, status_code=422)

    @app.exception_handler(PublishFailed)
    @app.exception_handler(StoreUnavailable)
    @app.exception_handler(JobsUnavailable)
    @app.exception_handler(LogUnavailable)
    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        log.warning("api_backend_unavailable", error=str(exc)[:300])
        return JSONResponse({"error": "temporarily unavailable; retry later"}, status_code=503)

    return app
