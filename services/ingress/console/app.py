"""The console's Starlette app: its pages, its static files, the answers to a missing session (to the
login page), to the API's refusals (shown with its reason and status) and to a forged form (403).

Every page is served with a strict Content-Security-Policy: scripts and styles from the console only.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentbus.services.ingress.console import (
    agents,
    channels,
    conversations,
    deadletters,
    jobs,
    live,
    login,
    replays,
    trace,
    usage,
)
from agentbus.services.ingress.console.apiclient import ApiError
from agentbus.services.ingress.console.web import (
    HERE,
    Console,
    CsrfFailed,
    Ctx,
    LoginRequired,
    language,
    render,
    to_login,
)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"same-origin"), (b"x-frame-options", b"DENY")]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self._app(scope, receive, with_headers)


async def _login_required(request: Request, _: Exception) -> Response:
    return to_login(request)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    if exc.status == 401:
        return to_login(request)
    ctx = Ctx(request, language(request))
    return render(ctx, "error.html", status=exc.status, title="error.api", reason=exc.reason)


async def _csrf(request: Request, _: Exception) -> Response:
    ctx = Ctx(request, language(request))
    return render(ctx, "error.html", status=403, title="error", reason=ctx.t("error.csrf"))


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    ctx = Ctx(request, language(request))
    reason = ctx.t("error.not_found") if exc.status_code == 404 else str(exc.detail)
    return render(ctx, "error.html", status=exc.status_code, title="error", reason=reason)


def console_app(console: Console) -> Starlette:
    routes: list[BaseRoute] = [*login.routes, *live.routes, *jobs.routes, *deadletters.routes, *agents.routes,
                               *trace.routes, *replays.routes, *conversations.routes,
                               *channels.routes, *usage.routes,
                               Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static")]
    app = Starlette(routes=routes, exception_handlers={
        LoginRequired: _login_required, ApiError: _api_error, CsrfFailed: _csrf, HTTPException: _http})
    app.state.console = console
    app.add_middleware(SecurityHeaders)
    return app
