"""What every console page shares: the session (a JWT in an HttpOnly cookie), the identity the API says it
is, the tenant shown, the language, the CSRF token of the session's forms, and rendering.

The session holds no state in the replica: the cookie is the API's own short-lived JWT, and the CSRF token is
an HMAC keyed by it, so any replica checks a form of any other (double submit bound to the session: a page
of another site can neither read the cookie nor compute the token, and SameSite=Strict keeps the cookie
off its requests anyway).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp

from agentbus.config import PlatformConfig
from agentbus.sealing import Keyring
from agentbus.services.ingress.console import i18n
from agentbus.services.ingress.console.apiclient import Api, ApiError
from agentbus.settings import Settings

SESSION = "agentbus_console"
TENANT_COOKIE = "agentbus_console_tenant"
BASE = "/console"
HERE = Path(__file__).parent


@dataclass
class Console:
    """The console's ports: the operator API's app (called in-process), the settings to follow the event log
    with, the identity providers to offer, and the templates."""

    api_app: ASGIApp
    settings: Settings
    config: PlatformConfig | None = None  # the live configuration: its identity providers are offered
    keyring: Keyring | None = None  # opens the people's text of the events the Live page shows
    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(sorted(self.config.auth.providers)) if self.config is not None else ()

    env: Environment = field(default_factory=lambda: Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
        trim_blocks=True, lstrip_blocks=True))


class LoginRequired(Exception):
    """No session, or the API no longer accepts it (401): the browser goes to the login page."""


class CsrfFailed(Exception):
    """A write without this session's CSRF token."""


@dataclass
class Ctx:
    """One request's view of the session."""

    request: Request
    lang: str
    jwt: str | None = None
    me: dict[str, Any] = field(default_factory=dict)
    tenants: list[str] = field(default_factory=list)
    tenant: str | None = None

    @property
    def console(self) -> Console:
        console: Console = self.request.app.state.console
        return console

    @property
    def api(self) -> Api:
        return Api(self.console.api_app, self.jwt)

    @property
    def role(self) -> str:
        return str(self.me.get("role", ""))

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"

    @property
    def can_operate(self) -> bool:
        return self.role in ("owner", "admin", "operator")

    @property
    def csrf(self) -> str:
        return csrf_token(self.jwt or "")

    def t(self, key: str) -> str:
        return i18n.translator(self.lang)(key)


def csrf_token(jwt: str) -> str:
    return hmac.new(jwt.encode(), b"agentbus-console-csrf", hashlib.sha256).hexdigest()[:40]


def language(request: Request) -> str:
    return i18n.negotiate(request.query_params.get("lang"), request.cookies.get(i18n.COOKIE),
                          request.headers.get("accept-language"))


async def session(request: Request) -> Ctx:
    """The logged-in context of a page: who the API says the session is, and the tenant to show."""
    ctx = Ctx(request, language(request), request.cookies.get(SESSION))
    if not ctx.jwt:
        raise LoginRequired()
    try:
        ctx.me = await ctx.api.get("/me")
        ctx.tenants = [t["id"] for t in await ctx.api.get("/tenants")]
    except ApiError as err:
        if err.status == 401:
            raise LoginRequired() from None
        raise
    asked = request.query_params.get("tenant") or request.cookies.get(TENANT_COOKIE)
    if ctx.me.get("tenant"):
        ctx.tenant = ctx.me["tenant"]
    elif asked in ctx.tenants:
        ctx.tenant = asked
    elif ctx.tenants:
        ctx.tenant = ctx.tenants[0]
    return ctx


async def checked_form(request: Request, ctx: Ctx) -> FormData:
    """The posted form, once its CSRF token is this session's (header ``X-CSRF-Token`` for htmx)."""
    form = await request.form()
    given = str(form.get("csrf") or request.headers.get("x-csrf-token") or "")
    if not ctx.jwt or not hmac.compare_digest(given.encode(), ctx.csrf.encode()):
        raise CsrfFailed()
    return form


def url(path: str) -> str:
    return BASE + path


def render(ctx: Ctx, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    html = ctx.console.env.get_template(template).render(
        t=ctx.t, lang=ctx.lang, ctx=ctx, url=url, path=ctx.request.url.path, **values)
    resp = HTMLResponse(html, status_code=status)
    remember(ctx, resp)
    return resp


def remember(ctx: Ctx, resp: Response) -> None:
    """Keep the language chosen with ``?lang=`` and the tenant an owner switched to."""
    secure = ctx.request.url.scheme == "https"
    if ctx.request.query_params.get("lang") in i18n.LANGS:
        resp.set_cookie(i18n.COOKIE, ctx.lang, max_age=365 * 86400, path=BASE, samesite="strict", secure=secure)
    if ctx.is_owner and ctx.request.query_params.get("tenant") == ctx.tenant and ctx.tenant:
        resp.set_cookie(TENANT_COOKIE, ctx.tenant, path=BASE, samesite="strict", httponly=True, secure=secure)


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(url(path), status_code=303)


def to_login(request: Request, reason: str = "expired") -> Response:
    """A 303 to the login page (htmx: ``HX-Redirect``), dropping the session cookie the API refused."""
    target = url(f"/login?reason={reason}")
    resp: Response
    if request.headers.get("hx-request"):
        resp = Response(status_code=204, headers={"HX-Redirect": target})
    else:
        resp = RedirectResponse(target, status_code=303)
    resp.delete_cookie(SESSION, path=BASE)
    return resp
