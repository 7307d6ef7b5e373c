"""The console mounted by ingress at ``/console``, on the operator API app it calls in-process."""

from __future__ import annotations

import functools

from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from agentbus.config import PlatformConfig
from agentbus.sealing import Keyring
from agentbus.services.ingress.api.app import ApiDeps
from agentbus.services.ingress.console.app import console_app
from agentbus.services.ingress.console.login import handoff
from agentbus.services.ingress.console.web import BASE, Console
from agentbus.settings import Settings


async def _to_console(_: Request) -> RedirectResponse:
    return RedirectResponse(BASE + "/", status_code=307)


def console_routes(settings: Settings, config: PlatformConfig, api_app: ASGIApp,
                   keyring: Keyring | None = None) -> list[BaseRoute]:
    """The console's routes; a login through an identity provider started by the console ends in it."""
    console = Console(api_app=api_app, settings=settings, config=config, keyring=keyring)
    deps = getattr(getattr(api_app, "state", None), "deps", None)
    if isinstance(deps, ApiDeps):
        deps.login_handoff = functools.partial(handoff, console)
    return [Route(BASE, _to_console, methods=["GET"]), Mount(BASE, app=console_app(console))]
