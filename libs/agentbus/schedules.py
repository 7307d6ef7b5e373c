"""What a job's schedule means, checked in one place for agentbus.yaml, job commands and the command line.

A schedule is a kind (``cron``, ``at``, ``every``), an expression and a time zone. The configuration, the
scheduler's command handler and ``agentbus jobs`` all refuse a bad one with the same message, and the
scheduler computes due times with the same parsing, so what passes validation can always be scheduled
(a time zone that passed start-up cannot crash-loop the tick later).

Wall-clock times are resolved the same way everywhere: a time that happens twice (clocks go back) means
its first occurrence, a time that does not happen (clocks go forward) means the first instant after the
gap. So a daily 02:30 job fires once on both days of a DST change, never twice and never not at all.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

ScheduleKind = Literal["cron", "at", "every"]
KINDS: tuple[ScheduleKind, ...] = ("cron", "at", "every")
MAX_PERIOD_S = 100 * 366 * 86400.0  # beyond this a due time would overflow the calendar


class ScheduleError(ValueError):
    """A schedule that cannot be scheduled; ``field`` is ``kind``, ``expr`` or ``timezone``."""

    def __init__(self, field: Literal["kind", "expr", "timezone"], message: str) -> None:
        super().__init__(message)
        self.field = field


def zone(tz: str) -> ZoneInfo:
    """The IANA time zone named ``tz``."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ScheduleError("timezone", f"unknown time zone {tz!r}") from None


def wall_to_utc(wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant a naive wall-clock time in ``tz`` means: the first of two (clocks going back), or the
    end of the gap for a time that is skipped (clocks going forward)."""
    first = wall.replace(tzinfo=tz, fold=0)
    if _exists(first):
        return first.astimezone(UTC)
    t = wall.replace(second=0, microsecond=0)
    for _ in range(24 * 60):  # gaps are whole minutes and far shorter than a day
        t += timedelta(minutes=1)
        candidate = t.replace(tzinfo=tz)
        if _exists(candidate):
            return candidate.astimezone(UTC)
    raise ScheduleError("timezone", f"no end of the time gap at {wall.isoformat()} in {tz.key!r}")


def _exists(aware: datetime) -> bool:
    back = aware.astimezone(UTC).astimezone(aware.tzinfo)
    return back.replace(tzinfo=None) == aware.replace(tzinfo=None)


def parse_at(expr: str, tz: str) -> datetime:
    """The instant of an ``at`` schedule (ISO-8601; without an offset it is wall-clock time in ``tz``)."""
    try:
        at = datetime.fromisoformat(expr.strip())
    except (ValueError, AttributeError):
        raise ScheduleError("expr", f"not an ISO-8601 date and time: {expr!r}") from None
    if at.tzinfo is None:
        return wall_to_utc(at, zone(tz))
    return at.astimezone(UTC)


def period(expr: str) -> timedelta:
    """The period of an ``every`` schedule (seconds, positive)."""
    try:
        seconds = float(expr)
    except (ValueError, TypeError):
        raise ScheduleError("expr", f"not a number of seconds: {expr!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ScheduleError("expr", f"the period must be a positive number of seconds, not {expr!r}")
    if seconds > MAX_PERIOD_S:
        raise ScheduleError("expr", f"the period must be at most {MAX_PERIOD_S:.0f} seconds, not {expr!r}")
    return timedelta(seconds=seconds)


def check_cron(expr: str) -> None:
    """A cron expression croniter reads, and that matches some time (``0 0 31 2 *`` never does)."""
    if not isinstance(expr, str) or not croniter.is_valid(expr):
        raise ScheduleError("expr", f"invalid cron expression {expr!r} (minute hour day month weekday)")
    try:
        croniter(expr, datetime(2000, 1, 1)).get_next(datetime)
    except Exception:  # croniter's own errors (CroniterBadDateError...): the expression never matches
        raise ScheduleError("expr", f"cron expression {expr!r} never matches a date") from None


def check_schedule(kind: str, expr: str, tz: str) -> None:
    """Raise ``ScheduleError`` naming the field unless the schedule can be scheduled."""
    zone(tz)
    if kind == "cron":
        check_cron(expr)
    elif kind == "at":
        parse_at(expr, tz)
    elif kind == "every":
        period(expr)
    else:
        raise ScheduleError("kind", f"unknown schedule kind {kind!r} (one of {', '.join(KINDS)})")


# when a job is next due. Cron expressions are wall-clock times, iterated on the naive local clock and
# resolved to instants as ``wall_to_utc`` says: croniter's own time-zone handling fires a daily 02:30 job
# twice when clocks go back (once at 02:30 summer time, again at 02:30 winter time); iterating the wall
# clock fires it once.


def next_cron(expr: str, tz: str, after: datetime) -> datetime:
    """The first instant strictly after ``after`` at which the wall clock in ``tz`` matches ``expr``."""
    z = zone(tz)
    it = croniter(expr, after.astimezone(z).replace(tzinfo=None))
    for _ in range(10_000):  # more than one candidate only around a change of the clocks
        due = wall_to_utc(it.get_next(datetime), z)
        if due > after:
            return due
    raise ValueError(f"cron {expr!r} in {tz!r} has no due time after {after.isoformat()}")  # pragma: no cover


def next_due(kind: str, expr: str, tz: str, after: datetime) -> datetime | None:
    """The first due time strictly after ``after`` (UTC-aware), or None when the job is finished."""
    if kind == "cron":
        return next_cron(expr, tz, after)
    if kind == "at":
        at = parse_at(expr, tz)
        return at if at > after else None
    if kind == "every":
        return after + period(expr)
    raise ValueError(f"unknown schedule kind {kind!r}")


def first_due(kind: str, expr: str, tz: str, now: datetime) -> datetime | None:
    """The first due time of a new (or rescheduled) job: an ``at`` already past fires once, now."""
    if kind == "at":
        return parse_at(expr, tz)
    return next_due(kind, expr, tz, now)
