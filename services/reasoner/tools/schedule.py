"""The built-in ``schedule`` tool: "remind the team every weekday at 9:00", "what is scheduled here?",
"stop the daily report".

Create, pause, resume and cancel become ``job.requested`` commands published with the reply (once, with
ids derived from the call), so the scheduler applies them exactly once across its replicas. Jobs target the
asker's own conversation only: a job created here posts into this chat, and a job of another chat cannot
be paused or cancelled from here (the scheduler's ``/v1/jobs`` is asked which jobs belong to this chat).
Listing reads that endpoint too; a scheduler that cannot be reached is an error the model tells the user.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, Field

from agentbus.events import JobRequested
from agentbus.httpclient import async_client
from agentbus.jobs import JobCommandError, build_command, schedule_of
from agentbus.schedules import ScheduleError, first_due
from agentbus.services.reasoner.ports import ToolContext, ToolError, ToolResult
from agentbus.services.reasoner.tools.base import TypedTool
from agentbus.settings import DEFAULT_PORTS, Settings


def scheduler_url(settings: Settings) -> str:
    return (settings.scheduler_url or f"http://127.0.0.1:{DEFAULT_PORTS['scheduler']}").rstrip("/")


class ScheduleArgs(BaseModel):
    action: Literal["create", "list", "pause", "resume", "cancel"]
    prompt: str | None = Field(default=None, max_length=8000, description="create: what the assistant is asked "
                               "when the job is due, e.g. 'Remind the team to fill in the weekly report.'")
    cron: str | None = Field(default=None, description="create: a cron expression in the time zone, e.g. "
                             "'0 9 * * 1-5' for weekdays at 9:00")
    every_seconds: float | None = Field(default=None, gt=0, description="create: repeat every N seconds")
    at: str | None = Field(default=None, description="create: once, at this ISO-8601 local date and time")
    in_seconds: float | None = Field(default=None, gt=0, description="create: once, this many seconds from now")
    timezone: str = Field(default="UTC", description="IANA time zone of cron and at, e.g. Asia/Shanghai")
    job_id: str | None = Field(default=None, description="pause, resume, cancel: the job (see list)")


class ScheduleTool(TypedTool[ScheduleArgs]):
    name: ClassVar[str] = "schedule"
    description: ClassVar[str] = (
        "Scheduled jobs of this chat: `create` a reminder or recurring task (give prompt and exactly one of "
        "cron, every_seconds, at, in_seconds), `list` the jobs of this chat, `pause`, `resume` or `cancel` one "
        "by job_id. When a job is due, you are asked its prompt and your answer is posted here.")
    side_effects: ClassVar[bool] = True  # create, pause, resume and cancel change jobs; list only reads
    args: ClassVar[type[BaseModel]] = ScheduleArgs

    def __init__(self, base_url: str, timeout_s: float = 5.0) -> None:
        self._url = base_url.rstrip("/")
        self._http = async_client(timeout=timeout_s, max_connections=8)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def run(self, args: ScheduleArgs, ctx: ToolContext) -> ToolResult:
        if args.action == "list":
            jobs = await self._jobs(ctx)
            if not jobs:
                return ToolResult("no jobs are scheduled in this chat")
            return ToolResult("\n".join(_line(j) for j in jobs))
        if args.action == "create":
            return self._create(args, ctx)
        if not args.job_id:
            raise ToolError(f"{args.action} needs job_id (list the jobs of this chat to find it)")
        if args.job_id not in {j["job_id"] for j in await self._jobs(ctx)}:
            raise ToolError(f"no job {args.job_id!r} in this chat")
        cmd = self._command(args.action, args.job_id, ctx)
        return ToolResult(f"{args.action} of job {args.job_id} requested", commands=[cmd])

    def _create(self, args: ScheduleArgs, ctx: ToolContext) -> ToolResult:
        if not args.prompt:
            raise ToolError("create needs prompt: what to say or do when the job is due")
        at = args.at
        if args.in_seconds is not None:
            if at is not None:
                raise ToolError("give exactly one of cron, every_seconds, at, in_seconds")
            at = (ctx.now.astimezone(UTC) + timedelta(seconds=args.in_seconds)).isoformat()
        try:
            schedule = schedule_of(cron=args.cron, every_s=args.every_seconds, at=at, timezone=args.timezone)
        except JobCommandError as err:
            raise ToolError(str(err)) from None
        job_id = f"job-{ctx.idempotency_key[:8]}{ctx.idempotency_key[9:13]}"  # the same on a redelivery
        cmd = self._command("create", job_id, ctx, schedule=schedule, prompt=args.prompt)
        try:
            due = first_due(schedule.kind, schedule.expr, schedule.timezone, ctx.now)
        except ScheduleError as err:
            raise ToolError(str(err)) from None
        when = f"; first due {due.isoformat()}" if due is not None else ""
        return ToolResult(f"created job {job_id} ({schedule.kind} {schedule.expr} {schedule.timezone}){when}",
                          commands=[cmd])

    def _command(self, action: str, job_id: str, ctx: ToolContext, **job: Any) -> JobRequested:
        data = ctx.cause.data
        try:
            cmd = build_command(action, job_id, requested_by=f"agent:{ctx.agent}", channel=ctx.channel,
                                chat=ctx.chat, agent=ctx.agent, reply_route=data.reply_route, **job)
        except JobCommandError as err:
            raise ToolError(str(err)) from None
        return ctx.command(JobRequested, cmd, name="job")

    async def _jobs(self, ctx: ToolContext) -> list[dict[str, Any]]:
        params = {"tenant": ctx.tenant, "channel": ctx.channel, "chat": ctx.chat.id}
        try:
            resp = await self._http.get(f"{self._url}/v1/jobs", params=params)
        except httpx.HTTPError as exc:
            raise ToolError(f"the scheduler is unavailable ({type(exc).__name__}); try again later") from None
        if resp.status_code != 200:
            raise ToolError(f"the scheduler answered HTTP {resp.status_code}")
        return [j for j in resp.json().get("jobs", []) if j.get("state") not in ("cancelled", "removed")]


def _line(job: dict[str, Any]) -> str:
    s = job["schedule"]
    nxt = f", next {job['next_due']}" if job.get("next_due") else ""
    return f"{job['job_id']} [{job['state']}] {s['kind']} {s['expr']} {s['timezone']}{nxt}: {job['prompt']}"
