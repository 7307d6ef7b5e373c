"""The schedule tool against a scheduler admin endpoint over real HTTP: commands for this chat only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentbus.events import JobRequested
from agentbus.http import LoopbackServer
from agentbus.jobs import check_command
from agentbus.services.reasoner.tools.schedule import ScheduleTool
from tests.support.toolctx import tool_context

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


class FakeScheduler:
    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []
        self.asked: list[dict[str, str]] = []
        self.server: LoopbackServer | None = None

    async def start(self) -> FakeScheduler:
        async def jobs(request: Request) -> Response:
            q = dict(request.query_params)
            self.asked.append(q)
            return JSONResponse({"jobs": [j for j in self.jobs if j["tenant"] == q["tenant"]
                                          and j["channel"] == q["channel"] and j["chat"]["id"] == q["chat"]]})

        self.server = LoopbackServer([Route("/v1/jobs", jobs, methods=["GET"])])
        await self.server.start()
        return self


def job(job_id: str, chat: str = "c1", state: str = "active") -> dict[str, Any]:
    return {"job_id": job_id, "state": state, "tenant": "acme", "channel": "acme", "chat": {"id": chat},
            "schedule": {"kind": "cron", "expr": "0 9 * * 1-5", "timezone": "Asia/Shanghai"},
            "next_due": "2026-12-03T01:00:00+00:00", "prompt": "report"}


@pytest.fixture
async def scheduler() -> AsyncIterator[FakeScheduler]:
    s = await FakeScheduler().start()
    yield s
    assert s.server is not None
    await s.server.stop()


async def call(tool: ScheduleTool, **args: Any) -> Any:
    return await tool.call(args, tool_context(NOW))


async def test_create_asks_for_a_job_of_this_chat_with_an_id_the_same_on_a_redelivery(
    scheduler: FakeScheduler,
) -> None:
    assert scheduler.server is not None
    tool = ScheduleTool(scheduler.server.url)
    ctx = tool_context(NOW)
    args = {"action": "create", "prompt": "Remind the team to fill in the report", "cron": "0 9 * * 1-5",
            "timezone": "Asia/Shanghai"}
    r = await tool.call(args, ctx)
    assert not r.is_error and "first due 2026-12-03T01:00:00+00:00" in r.content
    [cmd] = r.commands
    assert isinstance(cmd, JobRequested) and cmd.data.action == "create"
    assert cmd.data.channel == "acme" and cmd.data.chat.id == "c1" and cmd.tenant == "acme"
    assert cmd.data.requested_by == "agent:assistant" and cmd.conversation == "acme/acme/c1"
    check_command(cmd.data)
    again = await tool.call(args, ctx)  # the same call redelivered
    assert again.commands[0].id == cmd.id and again.commands[0].data.job_id == cmd.data.job_id
    await tool.aclose()


async def test_in_seconds_is_a_one_off_job(scheduler: FakeScheduler) -> None:
    assert scheduler.server is not None
    tool = ScheduleTool(scheduler.server.url)
    r = await call(tool, action="create", prompt="stand up", in_seconds=5)
    [cmd] = r.commands
    assert cmd.data.schedule.kind == "at" and "first due 2026-12-02T08:00:05+00:00" in r.content
    await tool.aclose()


@pytest.mark.parametrize(("args", "error"), [
    ({"action": "create", "prompt": "x", "timezone": "Mars/Base", "cron": "0 9 * * *"}, "unknown time zone"),
    ({"action": "create", "prompt": "x", "cron": "0 9 * * *", "every_seconds": 5}, "exactly one"),
    ({"action": "create", "cron": "0 9 * * *"}, "needs prompt"),
    ({"action": "create", "prompt": "x", "at": "not-a-date"}, "at"),
    ({"action": "cancel"}, "needs job_id"),
    ({"action": "explode"}, "invalid arguments"),
])
async def test_bad_arguments_are_errors_for_the_model_and_ask_for_nothing(
    scheduler: FakeScheduler, args: dict[str, Any], error: str
) -> None:
    assert scheduler.server is not None
    tool = ScheduleTool(scheduler.server.url)
    r = await tool.call(args, tool_context(NOW))
    assert r.is_error and error in r.content and not r.commands
    await tool.aclose()


async def test_list_and_cancel_only_see_this_chats_jobs(scheduler: FakeScheduler) -> None:
    assert scheduler.server is not None
    scheduler.jobs = [job("daily"), job("elsewhere", chat="c2"), job("gone", state="cancelled")]
    tool = ScheduleTool(scheduler.server.url)
    listed = await call(tool, action="list")
    assert "daily [active] cron 0 9 * * 1-5 Asia/Shanghai" in listed.content
    assert "elsewhere" not in listed.content and "gone" not in listed.content
    assert scheduler.asked[-1] == {"tenant": "acme", "channel": "acme", "chat": "c1"}
    refused = await call(tool, action="cancel", job_id="elsewhere")
    assert refused.is_error and "no job 'elsewhere' in this chat" in refused.content and not refused.commands
    ok = await call(tool, action="pause", job_id="daily")
    [cmd] = ok.commands
    assert cmd.data.action == "pause" and cmd.data.job_id == "daily"
    await tool.aclose()


async def test_a_scheduler_that_cannot_be_reached_is_an_error_result() -> None:
    tool = ScheduleTool("http://127.0.0.1:9")  # nothing listens on the discard port
    r = await call(tool, action="list")
    assert r.is_error and "scheduler is unavailable" in r.content
    await tool.aclose()
