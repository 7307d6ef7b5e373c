"""When is a job next due? Cron (in the job's time zone), one instant, or a fixed period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter


def next_due(kind: str, expr: str, tz: str, after: datetime) -> datetime | None:
    """The first due time strictly after ``after`` (UTC-aware), or None when the job is finished."""
    if kind == "cron":
        local = after.astimezone(ZoneInfo(tz))
        nxt = croniter(expr, local).get_next(datetime)
        return nxt.astimezone(UTC)
    if kind == "at":
        at = datetime.fromisoformat(expr)
        if at.tzinfo is None:
            at = at.replace(tzinfo=ZoneInfo(tz))
        at = at.astimezone(UTC)
        return at if at > after else None
    if kind == "every":
        period = timedelta(seconds=float(expr))
        return after + period
    raise ValueError(f"unknown schedule kind {kind!r}")


def first_due(kind: str, expr: str, tz: str, now: datetime) -> datetime | None:
    if kind == "at":
        at = datetime.fromisoformat(expr)
        if at.tzinfo is None:
            at = at.replace(tzinfo=ZoneInfo(tz))
        return at.astimezone(UTC)
    if kind == "every":
        return now + timedelta(seconds=float(expr))
    return next_due(kind, expr, tz, now)
