"""Logging in to the console: a pasted API token is exchanged by the API for a short-lived JWT, which the
browser keeps in an HttpOnly, SameSite=Strict cookie (Secure over https); logging out drops it."""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from agentbus.services.ingress.api.app import PREFIX as API_PREFIX
from agentbus.services.ingress.console import i18n
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
    url,
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


async def sso(request: Request) -> Response:
    """To the API's login with the provider, which hands the person back to the console (``handoff``)."""
    provider = request.path_params["provider"]
    if provider not in _console(request).providers:
        return render(Ctx(request, language(request)), "error.html", status=404, title="error",
                      reason=f"no identity provider {provider[:32]!r}")
    return RedirectResponse(f"{API_PREFIX}/auth/login/{provider}?then=console", status_code=303)


def handoff(console: Console, request: Request, token: str, expires: datetime) -> Response:
    """The API's answer to a person logged in through a provider for the console: the session cookie, and a
    page that moves on to the console. Not a redirect: the provider's redirect to the callback is a
    cross-site navigation, and a SameSite=Strict cookie goes only with a navigation this site starts."""
    lang = language(request)
    html = console.env.get_template("login_done.html").render(t=i18n.translator(lang), lang=lang, url=url)
    resp = HTMLResponse(html, headers={"cache-control": "no-store", "referrer-policy": "no-referrer"})
    ttl = max(0, int((expires - datetime.now(UTC)).total_seconds()))
    resp.set_cookie(SESSION, token, max_age=ttl, path=BASE, httponly=True, samesite="strict",
                    secure=request.url.scheme == "https")
    log.info("console_sso_login")
    return resp


async def home(request: Request) -> Response:
    return redirect("/live")


routes = [
    Route("/", home, methods=["GET"]),
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/login/{provider}", sso, methods=["GET"]),
]
