"""Job commands built and checked by the kernel helper the CLI and the agent's schedule tool share."""

from __future__ import annotations

import pytest

from agentbus.events import Chat, JobRequested, parse_event
from agentbus.jobs import JobCommandError, build_command, job_requested, new_job_id, schedule_of


def test_a_create_command_round_trips_as_a_v2_event_keyed_by_its_conversation() -> None:
    cmd = build_command("create", new_job_id(), requested_by="agent:assistant",
                        schedule=schedule_of(cron="0 9 * * 1-5", timezone="Asia/Shanghai"), channel="acme",
                        chat=Chat(id="c/1", type="group"), prompt="standup?")
    event = job_requested(cmd, tenant="acme", channel="acme", chat="c/1", source="reasoner")
    back = parse_event(event.to_bytes())
    assert isinstance(back, JobRequested) and back.version == 2 and back.data == cmd
    assert back.conversation == "acme/acme/c/1"


def test_every_is_written_without_a_trailing_zero() -> None:
    assert schedule_of(every_s=60.0).expr == "60" and schedule_of(every_s=0.5).expr == "0.5"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"action": "delete"}, "action"),
        ({"job_id": ""}, "job_id"),
        ({"requested_by": " "}, "requested_by"),
        ({"prompt": None}, "prompt"),
        ({"prompt": "x" * 8001}, "prompt"),
        ({"chat": None}, "chat"),
    ],
)
def test_a_bad_command_names_its_field(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"action": "create", "job_id": "j1", "requested_by": "cli",
                               "schedule": schedule_of(every_s=5), "channel": "acme", "chat": Chat(id="c"),
                               "prompt": "p", **kwargs}
    with pytest.raises(JobCommandError) as err:
        build_command(args.pop("action"), args.pop("job_id"), **args)  # type: ignore[arg-type]  # the bad values are the point
    assert err.value.field == field and str(err.value).startswith(f"{field}: ")


def test_pause_resume_and_cancel_name_the_job_only() -> None:
    for action in ("pause", "resume", "cancel"):
        assert build_command(action, "j1", requested_by="cli").schedule is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "schedule: give exactly one of cron, every, at"),
        ({"cron": "0 9 * * *", "at": "2026-05-01"}, "schedule: give exactly one"),
        ({"at": "2026-05-01T09:00", "timezone": "Mars/Base"}, "schedule.timezone: unknown time zone 'Mars/Base'"),
        ({"every_s": 0}, "schedule.expr: the period must be a positive number of seconds"),
    ],
)
def test_a_bad_schedule_is_refused_before_anything_is_built(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(JobCommandError, match=message):
        schedule_of(**kwargs)  # type: ignore[arg-type]  # the bad values are the point
