"""A tenant's scheduled jobs: listed from the scheduler's ``/v1/jobs``, changed by ``job.requested`` commands.

A write is never applied here: the command is published (acks=all) with its audit event and answered 202
with the command's id; the scheduler applies it once, in order. Pausing, resuming and cancelling look the
job up among the tenant's own jobs first, so a job of another tenant is a 404 like one that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from agentbus.events import Chat
from agentbus.jobs import (
    JOB_ID_PATTERN,
    MAX_PROMPT,
    JobCommandError,
    build_command,
    job_requested,
    new_job_id,
    schedule_of,
)
from agentbus.services.ingress.api.app import Access, allow
from agentbus.services.ingress.api.config_routes import TenantPath

router = APIRouter(tags=["jobs"])
JobPath = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="a job id")]
Printable = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f]+$")]


class ScheduleOut(BaseModel):
    kind: str
    expr: str
    timezone: str


class ChatOut(BaseModel):
    id: str
    type: str


class JobOut(BaseModel):
    job_id: str
    state: str
    source: str | None = None
    schedule: ScheduleOut
    next_due: str | None = None
    channel: str
    chat: ChatOut
    agent: str | None = None
    prompt: str
    requested_by: str | None = None
    paused_at: str | None = None
    cancelled_at: str | None = None
    updated_at: str | None = None


class CreateJobIn(BaseModel):
    model_config = {"extra": "forbid"}

    id: str | None = Field(default=None, pattern=JOB_ID_PATTERN, description="default: a new id")
    channel: Printable = Field(description="a channel of the tenant")
    chat: Printable = Field(description="the chat (conversation) id the job posts into")
    chat_type: Literal["direct", "group"] = "group"
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT, pattern=r"^[^\x00]+$",
                        description="what the agent is asked each time the job fires (no NUL: it is stored as text)")
    cron: str | None = Field(default=None, max_length=200)
    every_s: float | None = Field(default=None, gt=0)
    at: str | None = Field(default=None, max_length=64)
    timezone: str = Field(default="UTC", max_length=64)
    agent: str | None = Field(default=None, max_length=64, description="default: the channel's agent")


class Accepted(BaseModel):
    command_id: str
    job_id: str
    action: str


def _invalid(loc: str, msg: str) -> RequestValidationError:
    return RequestValidationError([{"loc": tuple(loc.split(".")), "msg": msg, "type": "value_error"}])


@router.get("/tenants/{tenant}/jobs", name="jobs.list", response_model=list[JobOut])
async def list_jobs(tenant: TenantPath, access: Access = Depends(allow("viewer")),
                    channel: Printable | None = Query(default=None),
                    chat: Printable | None = Query(default=None)) -> list[dict[str, Any]]:
    jobs = await access.deps.jobs.list_jobs(tenant)
    return [j for j in jobs if j.get("tenant") == tenant and channel in (None, j.get("channel"))
            and chat in (None, (j.get("chat") or {}).get("id"))]


@router.post("/tenants/{tenant}/jobs", name="jobs.create", status_code=202, response_model=Accepted)
async def create_job(tenant: TenantPath, body: CreateJobIn, access: Access = Depends(allow("operator"))) -> Accepted:
    config = access.deps.config
    ch = config.channel(body.channel)
    if ch is None or ch.tenant != tenant:
        raise _invalid("body.channel", f"unknown channel {body.channel!r} of tenant {tenant!r}")
    if body.agent is not None and config.agent(body.agent) is None:
        raise _invalid("body.agent", f"unknown agent {body.agent!r}")
    try:
        schedule = schedule_of(cron=body.cron, every_s=body.every_s, at=body.at, timezone=body.timezone)
        cmd = build_command("create", body.id or new_job_id(), requested_by=access.who.actor, schedule=schedule,
                            channel=body.channel, chat=Chat(id=body.chat, type=body.chat_type), prompt=body.prompt,
                            agent=body.agent)
    except JobCommandError as err:
        raise _invalid(f"body.{err.field}", err.reason) from None
    event = job_requested(cmd, tenant=tenant, channel=body.channel, chat=body.chat, source="ingress")
    await access.publish([event], target=cmd.job_id, detail=f"{schedule.kind} {schedule.expr}")
    return Accepted(command_id=str(event.id), job_id=cmd.job_id, action="create")


async def _change(action: str, tenant: str, job_id: str, access: Access) -> Accepted:
    job = next((j for j in await access.deps.jobs.list_jobs(tenant)
                if j.get("job_id") == job_id and j.get("tenant") == tenant), None)
    if job is None:
        raise HTTPException(404, f"no job {job_id!r}")
    cmd = build_command(action, job_id, requested_by=access.who.actor)
    event = job_requested(cmd, tenant=tenant, channel=job["channel"], chat=job["chat"]["id"], source="ingress")
    await access.publish([event], target=job_id)
    return Accepted(command_id=str(event.id), job_id=job_id, action=action)


@router.post("/tenants/{tenant}/jobs/{job_id}/pause", name="jobs.pause", status_code=202, response_model=Accepted)
async def pause_job(tenant: TenantPath, job_id: JobPath, access: Access = Depends(allow("operator"))) -> Accepted:
    return await _change("pause", tenant, job_id, access)


@router.post("/tenants/{tenant}/jobs/{job_id}/resume", name="jobs.resume", status_code=202, response_model=Accepted)
async def resume_job(tenant: TenantPath, job_id: JobPath, access: Access = Depends(allow("operator"))) -> Accepted:
    return await _change("resume", tenant, job_id, access)


@router.post("/tenants/{tenant}/jobs/{job_id}/cancel", name="jobs.cancel", status_code=202, response_model=Accepted)
async def cancel_job(tenant: TenantPath, job_id: JobPath, access: Access = Depends(allow("operator"))) -> Accepted:
    return await _change("cancel", tenant, job_id, access)
