"""``now``: the current date and time in a time zone, because a model has no clock and guesses otherwise.

The time is the loop's (``ToolContext.now``), not read here: the loop decides what "now" is for a step,
so a recorded step and a test see the time the step ran.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC
from functools import lru_cache
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from agentbus.services.reasoner.tools.base import ToolContext, ToolError, ToolResult, TypedTool


class NowArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timezone: str = Field(default="UTC", max_length=64,
                          description="IANA time zone name, e.g. Europe/Berlin, Asia/Shanghai, America/New_York")


@lru_cache(maxsize=1)
def _zones_by_folded_name() -> dict[str, str]:
    return {z.casefold(): z for z in zoneinfo.available_timezones()}


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone ``name`` (spelled in any case: "asia/shanghai"), or a ``ToolError`` naming it."""
    key = name.strip()
    try:
        return zoneinfo.ZoneInfo(key)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        pass
    known = _zones_by_folded_name().get(key.casefold())
    if known is not None:
        return zoneinfo.ZoneInfo(known)
    raise ToolError(f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin or Asia/Shanghai")


class Now(TypedTool[NowArgs]):
    name: ClassVar[str] = "now"
    description: ClassVar[str] = ("The current date and time (ISO 8601) and weekday in a time zone "
                                  "(IANA name, default UTC).")
    side_effects: ClassVar[bool] = False
    args: ClassVar[type[BaseModel]] = NowArgs

    async def run(self, args: NowArgs, ctx: ToolContext) -> ToolResult:
        tz = zone(args.timezone)
        at = ctx.now if ctx.now.tzinfo is not None else ctx.now.replace(tzinfo=UTC)
        local = at.astimezone(tz)
        offset = local.strftime("%z")
        return ToolResult(f"{local.isoformat(timespec='seconds')} {local.strftime('%A')} "
                          f"({tz.key}, {local.tzname()}, UTC{offset[:3]}:{offset[3:]})")
