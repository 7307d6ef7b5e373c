"""Who am I, and what is configured: tenants, their agents and channels, the models.

Read from the PlatformConfig ingress loaded. Secrets never leave: a credential is shown as the name of the
environment variable it is read from (``{env: NAME}``), never its value or its ``default``; header values
and URL user-info or query strings (where keys hide) are left out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field, ValidationError

from agentbus.channeltypes import ChannelBase, EnvRef
from agentbus.config import Agent, PlatformConfig
from agentbus.services.ingress.api.access import TENANT_ID
from agentbus.services.ingress.api.app import Access, allow

router = APIRouter(tags=["platform"])
TenantPath = Annotated[str, Path(pattern=TENANT_ID, description="a tenant id")]


class EnvName(BaseModel):
    env: str


class Grant(BaseModel):
    tenant: str
    role: str


class Me(BaseModel):
    token_id: str
    name: str
    role: str
    tenant: str | None
    expires_at: datetime | None
    grants: list[Grant]


class TenantOut(BaseModel):
    id: str
    name: str | None


class AgentOut(BaseModel):
    id: str
    model: str
    fallback_models: list[str]
    system_prompt: str
    reply_format: str
    tools: list[str]
    max_tool_steps: int
    channels: list[str]


class ChannelOut(BaseModel):
    id: str
    type: str
    mode: str
    agent: str
    progress: str
    require_mention_in_groups: bool
    rate_limit_per_minute: int | None
    credentials: dict[str, EnvName]


class ModelHealth(BaseModel):
    """How the reasoner last found the model: ``up`` null until its first probe or call."""

    up: bool | None
    checked_at: datetime | None
    error: str | None
    latency_ms: float | None


class ModelOut(BaseModel):
    name: str
    base_url: str
    model: str
    api_key: EnvName | None
    header_names: list[str]
    timeout_s: float
    tools: bool
    vision: bool
    max_context_tokens: int | None
    health: ModelHealth | None = Field(description="the reasoner's probes and calls; null when the reasoner "
                                       "could not be asked")


def _health(found: dict[str, dict[str, Any]] | None, name: str) -> ModelHealth | None:
    entry = (found or {}).get(name)
    if entry is None:
        return None
    try:
        return ModelHealth.model_validate(entry)
    except ValidationError:
        return None


@router.get("/me", name="me.read", response_model=Me)
async def me(access: Access = Depends(allow("viewer"))) -> Me:
    who = access.who
    tenants = [t.id for t in access.deps.config.tenants] if who.tenant is None else [who.tenant]
    return Me(token_id=who.token_id, name=who.name, role=who.role, tenant=who.tenant, expires_at=who.expires_at,
              grants=[Grant(tenant=t, role="owner" if who.tenant is None else who.role) for t in tenants])


@router.get("/tenants", name="tenants.list", response_model=list[TenantOut])
async def tenants(access: Access = Depends(allow("viewer"))) -> list[TenantOut]:
    return [TenantOut(id=t.id, name=t.name) for t in access.deps.config.tenants if access.who.sees(t.id)]


def tenant_channels(config: PlatformConfig, tenant: str) -> list[ChannelBase]:
    return [c for c in config.channels if c.tenant == tenant]


def _agent(a: Agent, channels: list[str]) -> AgentOut:
    return AgentOut(id=a.id, model=a.model, fallback_models=list(a.fallback_models), system_prompt=a.system_prompt,
                    reply_format=a.reply_format, tools=list(a.tools), max_tool_steps=a.max_tool_steps,
                    channels=channels)


@router.get("/tenants/{tenant}/agents", name="agents.list", response_model=list[AgentOut])
async def agents(tenant: TenantPath, access: Access = Depends(allow("viewer"))) -> list[AgentOut]:
    """The agents that answer on the tenant's channels or run its jobs (agents are shared by tenants)."""
    config = access.deps.config
    channels = tenant_channels(config, tenant)
    mine = {c.id for c in channels}
    used: dict[str, list[str]] = {}
    for c in channels:
        used.setdefault(c.agent, []).append(c.id)
    for j in config.jobs:
        if j.channel in mine and j.agent:
            used.setdefault(j.agent, [])
    return [_agent(a, used[a.id]) for a in config.agents if a.id in used]


def credentials(channel: ChannelBase) -> dict[str, EnvName]:
    out: dict[str, EnvName] = {}
    for name in type(channel).model_fields:
        value: Any = getattr(channel, name)
        if isinstance(value, EnvRef):
            out[name] = EnvName(env=value.env)
    return out


@router.get("/tenants/{tenant}/channels", name="channels.list", response_model=list[ChannelOut])
async def channels(tenant: TenantPath, access: Access = Depends(allow("viewer"))) -> list[ChannelOut]:
    return [ChannelOut(id=c.id, type=c.type, mode=c.mode, agent=c.agent, progress=c.progress,
                       require_mention_in_groups=c.require_mention_in_groups,
                       rate_limit_per_minute=c.rate_limit_per_minute, credentials=credentials(c))
            for c in tenant_channels(access.deps.config, tenant)]


def public_url(url: str) -> str:
    """The URL without user-info, query or fragment (where a key may be written)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@router.get("/models", name="models.list", response_model=list[ModelOut])
async def models(access: Access = Depends(allow("viewer"))) -> list[ModelOut]:
    """The platform's models (shared by every tenant), each with its health as the reasoner sees it."""
    reader = access.deps.models_health
    found = await reader.health() if reader is not None else None
    return [ModelOut(name=m.name, base_url=public_url(m.base_url), model=m.model,
                     api_key=EnvName(env=m.api_key.env) if m.api_key else None, header_names=sorted(m.headers),
                     timeout_s=m.timeout_s, tools=m.tools, vision=m.vision, max_context_tokens=m.max_context_tokens,
                     health=_health(found, m.name))
            for m in access.deps.config.models]
