"""Job commands (``job.requested`` v2) built and checked the same way by whoever asks for one.

The agent's ``schedule`` tool, ``agentbus jobs`` and the scheduler itself use these, so a command the
command line or the tool accepted is one the scheduler accepts too (apart from what only the platform's
configuration can tell: whether the channel exists and is the tenant's), and a bad one is refused with
the same message naming the field, before anything is published.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Final

from agentbus.events import Chat, JobAction, JobCommand, JobRequested, Schedule
from agentbus.ids import conversation_key
from agentbus.schedules import ScheduleError, check_schedule

JOB_ID_PATTERN: Final = r"^[a-zA-Z0-9][a-zA-Z0-9_.:-]{0,126}$"
ACTIONS: Final[tuple[JobAction, ...]] = ("create", "update", "pause", "resume", "cancel")
STORES_JOB: Final[frozenset[str]] = frozenset({"create", "update"})  # the actions that carry the whole job
MAX_PROMPT: Final = 8000
_JOB_ID = re.compile(JOB_ID_PATTERN)


class JobCommandError(ValueError):
    """A command that cannot be applied; the message starts with the field (``schedule.timezone: ...``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


def new_job_id() -> str:
    return f"job-{uuid.uuid4().hex[:12]}"


def check_command(cmd: JobCommand) -> None:
    """Raise ``JobCommandError`` unless the command is complete and its schedule can be scheduled."""
    if not _JOB_ID.match(cmd.job_id):
        raise JobCommandError("job_id", f"{cmd.job_id[:140]!r} is not a job id (letters, digits, _ . : -; "
                              "at most 127, starting with a letter or digit)")
    if not cmd.requested_by.strip():
        raise JobCommandError("requested_by", "say who asks (agent:<id>, cli, api)")
    if cmd.action not in STORES_JOB:
        return
    for name in ("schedule", "channel", "chat", "prompt"):
        if not getattr(cmd, name):
            raise JobCommandError(name, f"{cmd.action} needs schedule, channel, chat and prompt")
    assert cmd.schedule is not None and cmd.prompt is not None  # checked just above (for the type checker)
    if len(cmd.prompt) > MAX_PROMPT:
        raise JobCommandError("prompt", f"at most {MAX_PROMPT} characters, not {len(cmd.prompt)}")
    try:
        check_schedule(cmd.schedule.kind, cmd.schedule.expr, cmd.schedule.timezone)
    except ScheduleError as err:
        raise JobCommandError(f"schedule.{err.field}", str(err)) from None


def schedule_of(cron: str | None = None, every_s: float | str | None = None, at: str | None = None,
                timezone: str = "UTC") -> Schedule:
    """The schedule given by exactly one of cron, every (seconds) and at, checked."""
    given = [(k, v) for k, v in (("cron", cron), ("every", every_s), ("at", at)) if v is not None]
    if len(given) != 1:
        raise JobCommandError("schedule", "give exactly one of cron, every, at")
    kind, expr = given[0]
    expr = format(expr, "g") if isinstance(expr, float) else str(expr)
    try:
        check_schedule(kind, expr, timezone)
    except ScheduleError as err:
        raise JobCommandError(f"schedule.{err.field}", str(err)) from None
    return Schedule.model_validate({"kind": kind, "expr": expr, "timezone": timezone})


def build_command(
    action: str,
    job_id: str,
    *,
    requested_by: str,
    schedule: Schedule | None = None,
    channel: str | None = None,
    chat: Chat | None = None,
    prompt: str | None = None,
    agent: str | None = None,
    reply_route: dict[str, Any] | None = None,
) -> JobCommand:
    """A checked command; ``JobCommandError`` names the field that is wrong."""
    if action not in ACTIONS:
        raise JobCommandError("action", f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
    cmd = JobCommand.model_validate({
        "job_id": job_id, "action": action, "schedule": schedule, "agent": agent, "channel": channel, "chat": chat,
        "prompt": prompt, "reply_route": reply_route or {}, "requested_by": requested_by,
    })
    check_command(cmd)
    return cmd


def job_requested(cmd: JobCommand, *, tenant: str, channel: str, chat: str, source: str,
                  id: uuid.UUID | None = None) -> JobRequested:
    """The event of a command, keyed by the job's conversation so one job's commands stay in order."""
    return JobRequested.new(cmd, source=source, tenant=tenant, conversation=conversation_key(tenant, channel, chat),
                            id=id)
