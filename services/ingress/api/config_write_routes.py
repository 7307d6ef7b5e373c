"""Changing the running configuration: the whole document, or one tenant, agent, model or channel at a time.

Every write builds the next version of the configuration and publishes it as a ``config.changed`` event
(``agentbus.configwriter``: validated first, an invalid one refused naming the key, nothing published);
every replica of every service applies it without a restart. The answer comes once this replica has applied
it, so a read that follows sees it. ``expected_version`` makes a write conditional on the version it was
based on (409 otherwise); ``dry_run`` answers what would change and publishes nothing.

Agents, models and tenants are platform-wide (owner); a tenant's channels are its admins'.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query
from pydantic import BaseModel, Field, ValidationError

from agentbus.config import Agent, Model, Tenant, _channel_adapter, _fail
from agentbus.configwriter import ConfigConflict, ConfigRefused, Edit, NoConfig
from agentbus.liveconfig import wait_for_version
from agentbus.services.ingress.api.access import TENANT_ID
from agentbus.services.ingress.api.app import Access, Error, allow

router = APIRouter(tags=["configuration"])
TenantPath = Annotated[str, Path(pattern=TENANT_ID, description="a tenant id")]
ENTITY_ID = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$"
IdPath = Annotated[str, Path(pattern=ENTITY_ID)]
Expected = Annotated[int | None, Query(ge=1, description="refuse with 409 unless the running version is this")]
DryRun = Annotated[bool, Query(description="answer what would change; publish nothing")]
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"model": Error, "description": "the running version is not `expected_version`, or the id is taken"}}


class ConfigOut(BaseModel):
    version: int
    digest: str
    actor: str
    at: datetime | None
    document: dict[str, Any] = Field(description="the configuration as agentbus.yaml writes it (credentials are "
                                     "{env: NAME} references)")


class ConfigWritten(BaseModel):
    version: int = Field(description="the version now running (the same as before when nothing changed)")
    base_version: int
    changes: list[str]
    published: bool = Field(description="false for a dry run or a write that changes nothing")


class DocumentIn(BaseModel):
    document: dict[str, Any]


def _problems(message: str) -> list[dict[str, Any]]:
    out = []
    for line in message.splitlines()[1:]:
        key, _, msg = line.strip().partition(": ")
        out.append({"loc": key, "msg": msg})
    return out


async def _write(access: Access, edit: Edit, target: str, expected: int | None, dry_run: bool) -> ConfigWritten:
    writer, live = access.deps.config_writer, access.deps.live
    if writer is None or live is None:
        raise HTTPException(503, "the configuration cannot be changed on this replica")
    try:
        outcome = await writer.write(edit, actor=access.who.actor, reason="api", expected_version=expected,
                                     dry_run=dry_run)
    except ConfigRefused as err:
        problems = _problems(str(err))
        first = problems[0] if problems else {"loc": "document", "msg": str(err)}
        raise HTTPException(422, {"error": f"{first['loc']}: {first['msg']}", "problems": problems}) from None
    except ConfigConflict as err:
        raise HTTPException(409, str(err)) from None
    except NoConfig as err:
        raise HTTPException(503, str(err)) from None
    if outcome.published is not None:
        await access.publish([], target, detail="; ".join(outcome.changes)[:1000])
        await wait_for_version(live, outcome.version)
    return ConfigWritten(version=outcome.version, base_version=outcome.base_version, changes=outcome.changes,
                         published=outcome.published is not None)


def _replace(section: str, key: str, ident: str, item: dict[str, Any] | None) -> Edit:
    """An edit that puts ``item`` in place of the entity ``ident`` of ``section`` (appends it when new; removes
    the entity when ``item`` is None)."""

    def edit(doc: dict[str, Any]) -> dict[str, Any]:
        items = list(doc.get(section) or [])
        at = next((i for i, x in enumerate(items) if isinstance(x, dict) and x.get(key) == ident), None)
        if item is None:
            if at is None:
                raise HTTPException(404, f"no {section[:-1]} {ident!r}")
            del items[at]
        elif at is None:
            items.append(item)
        else:
            items[at] = item
        doc[section] = items
        return doc

    return edit


@router.get("/config", name="config.read", response_model=ConfigOut)
async def read_config(access: Access = Depends(allow("owner"))) -> ConfigOut:
    live = access.deps.live
    if live is None:
        raise HTTPException(503, "no live configuration on this replica")
    a = live.applied
    return ConfigOut(version=a.version, digest=a.digest, actor=a.actor, at=a.at, document=a.document)


@router.put("/config", name="config.replace", response_model=ConfigWritten, responses=WRITE_ERRORS)
async def replace_config(body: DocumentIn, expected_version: Expected = None, dry_run: DryRun = False,
                         access: Access = Depends(allow("owner"))) -> ConfigWritten:
    """The whole configuration (what ``agentbus config apply`` publishes)."""
    return await _write(access, lambda _old: body.document, "config", expected_version, dry_run)


def _body(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_unset=True)


def _same_id(given: str, path: str) -> None:
    if given != path:
        raise HTTPException(422, {"error": f"id: {given!r} differs from the path's {path!r}",
                                  "problems": [{"loc": "id", "msg": "must be the path's id"}]})


@router.put("/agents/{agent}", name="agents.put", response_model=ConfigWritten, responses=WRITE_ERRORS)
async def put_agent(agent: IdPath, body: Agent, expected_version: Expected = None, dry_run: DryRun = False,
                    access: Access = Depends(allow("owner"))) -> ConfigWritten:
    """Create or replace an agent (switching its model takes effect on its next message)."""
    _same_id(body.id, agent)
    return await _write(access, _replace("agents", "id", agent, _body(body)), f"agent {agent}", expected_version,
                        dry_run)


@router.delete("/agents/{agent}", name="agents.delete", response_model=ConfigWritten, responses=WRITE_ERRORS)
async def delete_agent(agent: IdPath, expected_version: Expected = None, dry_run: DryRun = False,
                       access: Access = Depends(allow("owner"))) -> ConfigWritten:
    return await _write(access, _replace("agents", "id", agent, None), f"agent {agent}", expected_version, dry_run)


@router.put("/models/{model}", name="models.put", response_model=ConfigWritten, responses=WRITE_ERRORS)
async def put_model(model: IdPath, body: Model, expected_version: Expected = None, dry_run: DryRun = False,
                    access: Access = Depends(allow("owner"))) -> ConfigWritten:
    if body.name != model:
        raise HTTPException(422, {"error": f"name: {body.name!r} differs from the path's {model!r}",
                                  "problems": [{"loc": "name", "msg": "must be the path's name"}]})
    return await _write(access, _replace("models", "name", model, _body(body)), f"model {model}", expected_version,
                        dry_run)


@router.delete("/models/{model}", name="models.delete", response_model=ConfigWritten, responses=WRITE_ERRORS)
async def delete_model(model: IdPath, expected_version: Expected = None, dry_run: DryRun = False,
                       access: Access = Depends(allow("owner"))) -> ConfigWritten:
    return await _write(access, _replace("models", "name", model, None), f"model {model}", expected_version, dry_run)


@router.post("/tenants", name="tenants.create", response_model=ConfigWritten, status_code=201,
             responses=WRITE_ERRORS)
async def create_tenant(body: Tenant, expected_version: Expected = None, dry_run: DryRun = False,
                        access: Access = Depends(allow("owner"))) -> ConfigWritten:
    if access.deps.config.tenant(body.id) is not None:
        raise HTTPException(409, f"tenant {body.id!r} exists")
    return await _write(access, _replace("tenants", "id", body.id, _body(body)), f"tenant {body.id}",
                        expected_version, dry_run)


@router.put("/tenants/{tenant}", name="tenants.put", response_model=ConfigWritten, responses=WRITE_ERRORS)
async def put_tenant(tenant: TenantPath, body: Tenant, expected_version: Expected = None, dry_run: DryRun = False,
                     access: Access = Depends(allow("owner"))) -> ConfigWritten:
    """Change a tenant's name, quotas or PII masking."""
    _same_id(body.id, tenant)
    return await _write(access, _replace("tenants", "id", tenant, _body(body)), f"tenant {tenant}",
                        expected_version, dry_run)


@router.delete("/tenants/{tenant}", name="tenants.delete", response_model=ConfigWritten, responses=WRITE_ERRORS)
async def delete_tenant(tenant: TenantPath, expected_version: Expected = None, dry_run: DryRun = False,
                        access: Access = Depends(allow("owner"))) -> ConfigWritten:
    """Remove a tenant (refused, naming the keys, while channels or users still refer to it)."""
    return await _write(access, _replace("tenants", "id", tenant, None), f"tenant {tenant}", expected_version,
                        dry_run)


def _tenant_channel(access: Access, tenant: str, channel: str, exists: bool) -> None:
    found = access.deps.config.channel(channel)
    if found is not None and found.tenant != tenant:  # another tenant's: as if it did not exist, but not free
        raise HTTPException(409 if not exists else 404, f"channel id {channel!r} is not available"
                            if not exists else f"no channel {channel!r}")
    if exists and found is None:
        raise HTTPException(404, f"no channel {channel!r}")


@router.put("/tenants/{tenant}/channels/{channel}", name="channels.put", response_model=ConfigWritten,
            responses=WRITE_ERRORS)
async def put_channel(tenant: TenantPath, channel: IdPath,
                      body: Annotated[dict[str, Any], Body(description="a channel as agentbus.yaml writes it "
                                                           "(type, agent, credentials as {env: NAME}, ...)")],
                      expected_version: Expected = None, dry_run: DryRun = False,
                      access: Access = Depends(allow("admin"))) -> ConfigWritten:
    """Create or replace one of the tenant's channels (a webhook channel answers at once on every replica)."""
    _tenant_channel(access, tenant, channel, exists=False)
    item = {**body, "id": channel, "tenant": tenant}
    try:
        _channel_adapter().validate_python(item)
    except ValidationError as err:
        message = str(_fail("channel", err))
        problems = _problems(message)
        first = problems[0] if problems else {"loc": "channel", "msg": "invalid"}
        raise HTTPException(422, {"error": f"{first['loc']}: {first['msg']}", "problems": problems}) from None
    return await _write(access, _replace("channels", "id", channel, item), f"channel {channel}", expected_version,
                        dry_run)


@router.delete("/tenants/{tenant}/channels/{channel}", name="channels.delete", response_model=ConfigWritten,
               responses=WRITE_ERRORS)
async def delete_channel(tenant: TenantPath, channel: IdPath, expected_version: Expected = None,
                         dry_run: DryRun = False, access: Access = Depends(allow("admin"))) -> ConfigWritten:
    _tenant_channel(access, tenant, channel, exists=True)
    return await _write(access, _replace("channels", "id", channel, None), f"channel {channel}", expected_version,
                        dry_run)
