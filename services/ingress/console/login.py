"""Logging in to the console: a pasted API token is exchanged by the API for a short-lived JWT, which the
browser keeps in an HttpOnly, SameSite=Strict cookie (Secure over https); logging out drops it."""

from __future__ import annotations

import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentbus.services.ingress.console.apiclient import Api, ApiError
from agentbus.services.ingress.console.web import (
    BASE,
    SESSION,
    Console,
    Ctx,
    checked_form,
    language,
    redirect,
    render,
    session,
)

log = structlog.get_logger("agentbus.ingress.console")
REASONS = {"expired": "login.expired", "logged_out": "login.logged_out"}
MAX_TOKEN = 4096


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


async def login_page(request: Request) -> Response:
    ctx = Ctx(request, language(request))
    notice = REASONS.get(request.query_params.get("reason", ""))
    return render(ctx, "login.html", notice=notice, error=None, providers=_console(request).providers)


async def login(request: Request) -> Response:
    ctx = Ctx(request, language(request))
    form = await request.form()
    token = str(form.get("token") or "").strip()
    try:
        if not token or len(token) > MAX_TOKEN:
            raise ApiError(422, "token: required" if not token else "token: too long")
        out = await Api(_console(request).api_app, token).post("/auth/token")
    except ApiError as err:
        log.info("console_login_refused", status=err.status)
        return render(ctx, "login.html", status=401 if err.status == 403 else err.status, notice=None,
                      error=err.reason, providers=_console(request).providers)
    resp = redirect("/live")
    resp.set_cookie(SESSION, out["access_token"], max_age=int(out["expires_in"]), path=BASE, httponly=True,
                    samesite="strict", secure=request.url.scheme == "https")
    log.info("console_login", subject=out["subject"], role=out["role"], tenant=out["tenant"])
    return resp


async def logout(request: Request) -> Response:
    ctx = await session(request)
    await checked_form(request, ctx)
    resp = redirect("/login?reason=logged_out")
    resp.delete_cookie(SESSION, path=BASE)
    return resp


async def home(request: Request) -> Response:
    return redirect("/live")


routes = [
    Route("/", home, methods=["GET"]),
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
