"""The Agents and models page: the agents answering on the tenant's channels, the platform's models with
their health as the reasoner sees it, and (for owners, since agents are shared by every tenant) an edit of
an agent's prompt, model, fallback chain and tools.

An edit reads the running configuration's version and document, changes only those four fields of the
agent and writes it back with ``PUT /agents/{id}?expected_version=``: the API validates it (naming the key
it refuses), publishes the new version and answers once it is applied, so the next message uses it.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentbus.services.ingress.console.apiclient import ApiError
from agentbus.services.ingress.console.web import Ctx, checked_form, render, session

MAX_PROMPT = 20_000


def names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


async def _page(ctx: Ctx, status: int = 200, error: str | None = None, notice: str | None = None,
                edited: str | None = None) -> Response:
    agents = await ctx.api.get(f"/tenants/{ctx.tenant}/agents") if ctx.tenant else []
    models = await ctx.api.get("/models")
    version = (await ctx.api.get("/config"))["version"] if ctx.is_owner else None
    choices = sorted({m["name"] for m in models} | {a["model"] for a in agents} | {"echo"})  # echo: built in
    return render(ctx, "agents.html", status=status, agents=agents, models=models, choices=choices,
                  version=version, error=error, notice=notice, edited=edited)


async def agents_page(request: Request) -> Response:
    return await _page(await session(request))


def edited_agent(current: dict[str, Any], form: Any) -> dict[str, Any]:
    """The agent's document with the form's four fields (everything else as it runs)."""
    return {**current, "system_prompt": str(form.get("system_prompt") or "")[:MAX_PROMPT],
            "model": str(form.get("model") or "").strip(), "fallback_models": names(str(form.get("fallback") or "")),
            "tools": names(str(form.get("tools") or ""))}


async def save(request: Request) -> Response:
    ctx = await session(request)
    form = await checked_form(request, ctx)
    agent = request.path_params["agent"]
    try:
        config = await ctx.api.get("/config")  # owners only: the API refuses anyone else with its reason
        current = next((a for a in config["document"].get("agents") or [] if a.get("id") == agent), None)
        if current is None:
            raise ApiError(404, f"no agent {agent[:64]!r}")
        expected = str(form.get("expected_version") or config["version"])
        out = await ctx.api.put(f"/agents/{agent}", edited_agent(current, form),
                                expected_version=expected if expected.isdigit() else None)
    except ApiError as err:
        if err.status == 401:
            raise
        return await _page(ctx, status=err.status, error=err.reason, edited=agent)
    notice = f"{ctx.t('agents.saved')} {out['version']}" if out["published"] else ctx.t("agents.unchanged")
    return await _page(ctx, notice=notice, edited=agent)


routes = [Route("/agents", agents_page, methods=["GET"]), Route("/agents/{agent}", save, methods=["POST"])]
