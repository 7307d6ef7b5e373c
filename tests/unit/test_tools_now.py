"""The ``now`` tool: the loop's time in the zone asked for, and a clear error for a zone that does not exist."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agentbus.services.reasoner.tools.now import Now
from tests.support.toolctx import tool_context

AT = datetime(2026, 3, 29, 0, 30, 5, 123456, tzinfo=UTC)  # a Sunday; Berlin switches to summer time at 01:00 UTC


@pytest.mark.parametrize(("args", "answer"), [
    ({}, "2026-03-29T00:30:05+00:00 Sunday (UTC, UTC, UTC+00:00)"),
    ({"timezone": "Europe/Berlin"}, "2026-03-29T01:30:05+01:00 Sunday (Europe/Berlin, CET, UTC+01:00)"),
    ({"timezone": "Asia/Shanghai"}, "2026-03-29T08:30:05+08:00 Sunday (Asia/Shanghai, CST, UTC+08:00)"),
    ({"timezone": "America/Los_Angeles"},
     "2026-03-28T17:30:05-07:00 Saturday (America/Los_Angeles, PDT, UTC-07:00)"),
    ({"timezone": "Asia/Kolkata"}, "2026-03-29T06:00:05+05:30 Sunday (Asia/Kolkata, IST, UTC+05:30)"),
    ({"timezone": "asia/shanghai"}, "2026-03-29T08:30:05+08:00 Sunday (Asia/Shanghai, CST, UTC+08:00)"),
])
async def test_the_time_is_given_in_the_zone_asked_for(args: dict[str, str], answer: str) -> None:
    result = await Now().call(args, tool_context(now=AT))
    assert (result.content, result.is_error, tuple(result.commands)) == (answer, False, ())


async def test_the_daylight_saving_switch_is_honoured() -> None:
    later = AT.replace(hour=1, minute=30)
    result = await Now().call({"timezone": "Europe/Berlin"}, tool_context(now=later))
    assert result.content.startswith("2026-03-29T03:30:05+02:00 Sunday (Europe/Berlin, CEST")


async def test_a_naive_clock_is_taken_as_utc() -> None:
    result = await Now().call({"timezone": "Asia/Tokyo"}, tool_context(now=datetime(2026, 1, 1, 0, 0)))
    assert result.content.startswith("2026-01-01T09:00:00+09:00 Thursday")


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "Europe", "../../etc/passwd", "", "/etc/localtime", "CET+1"])
async def test_an_unknown_zone_is_an_error_naming_it(zone: str) -> None:
    result = await Now().call({"timezone": zone}, tool_context(now=AT))
    assert result.is_error and result.content.startswith(f"unknown time zone {zone!r}: use an IANA name")


async def test_bad_arguments_are_an_error_result() -> None:
    result = await Now().call({"timezone": 7}, tool_context(now=AT))
    assert result.is_error and result.content.startswith("invalid arguments: timezone:")
    result = await Now().call({"tz": "UTC"}, tool_context(now=AT))
    assert result.is_error and "tz: Extra inputs are not permitted" in result.content


def test_the_schema_sent_to_the_model() -> None:
    tool = Now()
    assert (tool.name, tool.side_effects) == ("now", False)
    assert tool.parameters["properties"]["timezone"]["default"] == "UTC"
    assert "required" not in tool.parameters
