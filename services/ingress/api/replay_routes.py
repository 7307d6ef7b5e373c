"""A tenant's replay runs: started by a ``replay.requested`` command, their status and report read back from
the event log by run id.

Starting a run publishes the command (with its audit event) and answers 202 with the run id at once; ingress's
consumer of the command selects and republishes the events (``replay_runner``). The republished events are
the run: status and report are computed from them wherever they are asked, replayed replies beside their live
originals as in ``agentbus replay``. Status: ``selecting`` (asked for, the selection not recorded yet: a
replica that died mid-selection shows here until another one takes the command over), ``failed`` (the
selection itself was dead-lettered), ``running`` (selected, not every reply back yet), ``done``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, model_validator

from agentbus.events import ReplayRequested, ReplayRequestedData, utcnow
from agentbus.replayruns import ENTRY, Results, report_rows, summary, wanted_of
from agentbus.services.ingress.api.app import Access, allow
from agentbus.services.ingress.api.config_routes import TenantPath
from agentbus.services.ingress.api.eventlog import LogUnavailable, ReplayLog, RunEvents

router = APIRouter(tags=["replays"])
RUN_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
RunPath = Annotated[str, Path(pattern=RUN_ID, description="a replay run id")]
Status = Literal["selecting", "failed", "running", "done"]


class ReplayIn(BaseModel):
    model_config = {"extra": "forbid", "populate_by_name": True}

    from_: Literal["message", "job", "context"] = Field(
        default="context", alias="from",
        description="where to re-enter: message (memory onwards), job, or context (reasoner onwards)")
    since: datetime | None = Field(default=None, description="on the event's own time")
    until: datetime | None = Field(default=None, description="default: now (fixed when the run is asked for)")
    conversation: str | None = Field(default=None, min_length=1, max_length=300, pattern=r"^[^\x00-\x1f]+$",
                                     description="tenant/channel/chat or just the chat id")
    correlation: uuid.UUID | None = Field(default=None, description="one message's correlation id")
    rerun_llm: bool = Field(default=False, description="call the LLM again (default: reuse the ledger)")
    model: str | None = Field(default=None, min_length=1, max_length=64, description="with rerun_llm: a model")
    system_prompt: str | None = Field(default=None, min_length=1, max_length=8000, pattern=r"^[^\x00]+$")
    rerun_tools: bool = False
    limit: int = Field(default=100, ge=1, le=1000, description="replay at most this many events")

    @model_validator(mode="after")
    def _consistent(self) -> ReplayIn:
        if (self.model or self.system_prompt or self.rerun_tools) and not self.rerun_llm:
            raise ValueError("model, system_prompt and rerun_tools need rerun_llm")
        if self.since and self.until and _utc(self.since) > _utc(self.until):
            raise ValueError("since is after until")
        return self


class Started(BaseModel):
    run: str
    command_id: str
    status: Status


class RunStatus(BaseModel):
    run: str
    status: Status
    requested_at: datetime
    requested_by: str
    parameters: dict[str, Any]
    selected: int | None = Field(description="events the run re-runs (None: not selected yet)")
    truncated: bool = False
    expired: int = Field(default=0, description="events that matched but are older than the log's retention: "
                         "not replayed")
    replayed: int = 0
    failed: int = 0
    finished: int = 0
    error: str | None = None


class ReportRow(BaseModel):
    entry_id: str
    conversation: str | None
    reply_id: str
    original_model: str | None
    original: str | None
    replayed_model: str | None
    replayed: str | None
    changed: bool | None
    delivery: str | None
    error: str | None
    original_tools: list[str]
    replayed_tools: list[str]


class Report(RunStatus):
    changed: int = 0
    pushed_to_channels: int = 0
    messages: list[ReportRow] = Field(default_factory=list)


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _log(access: Access) -> ReplayLog:
    if access.deps.replays is None:
        raise LogUnavailable("replay runs are not served by this ingress")
    return access.deps.replays


@router.post("/tenants/{tenant}/replays", name="replay.start", status_code=202, response_model=Started)
async def start_replay(tenant: TenantPath, body: ReplayIn, access: Access = Depends(allow("operator"))) -> Started:
    if body.model is not None and body.model != "echo" and access.deps.config.model_named(body.model) is None:
        raise RequestValidationError([{"loc": ("body", "model"), "msg": f"unknown model {body.model!r}",
                                       "type": "value_error"}])
    run = f"replay-{uuid.uuid4().hex[:12]}"
    data = ReplayRequestedData(
        run=run, entry_type=ENTRY[body.from_], since=_utc(body.since) if body.since else None,
        until=_utc(body.until) if body.until else utcnow(), conversation=body.conversation,
        correlation=str(body.correlation) if body.correlation else None, limit=body.limit,
        rerun_llm=body.rerun_llm, model=body.model, system_prompt=body.system_prompt,
        rerun_tools=body.rerun_tools, requested_by=access.who.actor)
    event = ReplayRequested.new(data, source="ingress", tenant=tenant, conversation=f"{tenant}/replay/{run}")
    await access.publish([event], target=run, detail=f"from {body.from_}, limit {body.limit}"
                                                     + (", rerun_llm" if body.rerun_llm else ""))
    return Started(run=run, command_id=str(event.id), status="selecting")


async def _run(access: Access, tenant: str, run: str) -> RunEvents:
    events = await _log(access).run(run)
    if events.request is None or events.request.tenant != tenant:
        raise HTTPException(404, f"no replay run {run!r}")
    return events


def _status(events: RunEvents) -> tuple[RunStatus, Results]:
    request = events.request
    assert request is not None
    sel = events.selection
    entries = [(e.id, sel.data.entry_type) for e in sel.data.entries] if sel else []
    results = Results(wanted_of(entries))
    for e in events.produced:
        results.add(e)
    if sel is None:
        status: Status = "failed" if events.request_dead_letter is not None else "selecting"
    else:
        status = "done" if len(results.finished) >= len(results.wanted) else "running"
    params = request.data.model_dump(mode="json", exclude={"run", "requested_by"})
    dle = events.request_dead_letter
    return RunStatus(
        run=request.data.run, status=status, requested_at=request.occurred_at,
        requested_by=request.data.requested_by, parameters=params, selected=len(entries) if sel else None,
        truncated=sel.data.truncated if sel else False, expired=sel.data.expired if sel else 0,
        replayed=len(results.replayed),
        failed=len(results.failed), finished=len(results.finished & set(results.wanted)),
        error=f"{dle.data.error_type}: {dle.data.error}"[:500] if dle and sel is None else None,
    ), results


@router.get("/tenants/{tenant}/replays/{run}", name="replay.status", response_model=RunStatus)
async def replay_status(tenant: TenantPath, run: RunPath, access: Access = Depends(allow("viewer"))) -> RunStatus:
    status, _ = _status(await _run(access, tenant, run))
    return status


@router.get("/tenants/{tenant}/replays/{run}/report", name="replay.report", response_model=Report)
async def replay_report(tenant: TenantPath, run: RunPath, access: Access = Depends(allow("viewer"))) -> Report:
    events = await _run(access, tenant, run)
    status, results = _status(events)
    sel = events.selection
    if sel is None:
        return Report(**status.model_dump())
    entries = [(e.id, sel.data.entry_type) for e in sel.data.entries]
    rows = report_rows(entries, {e.id: e.conversation for e in sel.data.entries},
                       await _log(access).originals(), results)
    counts = summary(rows, results)
    return Report(**status.model_dump(), changed=counts["changed"], pushed_to_channels=counts["pushed_to_channels"],
                  messages=[ReportRow(**r) for r in rows])
