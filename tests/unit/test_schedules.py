"""Due times of cron (in a time zone, across DST changes), at and every; and the one schedule check that
agentbus.yaml, job commands and the command line share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from agentbus.schedules import ScheduleError, check_schedule, parse_at, wall_to_utc
from agentbus.services.scheduler.schedule import first_due, next_due

BERLIN = ZoneInfo("Europe/Berlin")


def due(kind: str, expr: str, tz: str, after: datetime) -> datetime:
    t = next_due(kind, expr, tz, after)
    assert t is not None
    return t


def firings(expr: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    out: list[datetime] = []
    t = start
    while (t := due("cron", expr, tz, t)) < end:
        out.append(t)
    return out


def local(ts: list[datetime]) -> list[str]:
    return [t.astimezone(BERLIN).strftime("%m-%d %H:%M %Z") for t in ts]


def test_cron_runs_on_the_wall_clock_of_its_time_zone() -> None:
    after = datetime(2026, 5, 4, 2, 0, tzinfo=UTC)  # a Monday, 10:00 in Shanghai
    assert next_due("cron", "0 9 * * 1-5", "Asia/Shanghai", after) == datetime(2026, 5, 5, 1, 0, tzinfo=UTC)
    assert next_due("cron", "0 9 * * 1-5", "UTC", after) == datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def test_croniter_alone_fires_a_daily_job_twice_when_the_clocks_go_back() -> None:
    """Why the scheduler iterates the naive wall clock instead of handing croniter an aware time."""
    t = datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN)  # 02:30 summer time, the first of two
    again = croniter("30 2 * * *", t).get_next(datetime)
    assert again.astimezone(UTC) - t.astimezone(UTC) == timedelta(hours=1)  # 02:30 winter time, same day


def test_a_daily_0230_job_fires_once_a_day_across_both_dst_changes() -> None:
    spring = firings("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 27, 12, tzinfo=UTC),
                     datetime(2026, 3, 31, 12, tzinfo=UTC))
    # 03-29 02:30 does not exist: it fires when the clock jumps (03:00 summer time), not skipped
    assert local(spring) == ["03-28 02:30 CET", "03-29 03:00 CEST", "03-30 02:30 CEST", "03-31 02:30 CEST"]
    autumn = firings("30 2 * * *", "Europe/Berlin", datetime(2026, 10, 23, 12, tzinfo=UTC),
                     datetime(2026, 10, 27, 12, tzinfo=UTC))
    # 10-25 02:30 happens twice: it fires at the first, once
    assert local(autumn) == ["10-24 02:30 CEST", "10-25 02:30 CEST", "10-26 02:30 CET", "10-27 02:30 CET"]
    for days in (spring, autumn):
        assert len({d.astimezone(BERLIN).date() for d in days}) == len(days)  # one per day


def test_a_due_time_computed_in_the_repeated_hour_is_not_the_one_already_passed() -> None:
    second_pass = datetime(2026, 10, 25, 2, 40, tzinfo=BERLIN, fold=1)  # 02:40 winter time
    assert local([due("cron", "30 2 * * *", "Europe/Berlin", second_pass)]) == ["10-26 02:30 CET"]


def test_wall_clock_resolution() -> None:
    assert wall_to_utc(datetime(2026, 3, 29, 2, 30), BERLIN) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert wall_to_utc(datetime(2026, 10, 25, 2, 30), BERLIN) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert wall_to_utc(datetime(2026, 7, 1, 12, 0), BERLIN) == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


def test_at_is_one_instant_then_finished() -> None:
    at = "2026-05-01T09:00:00"
    once = first_due("at", at, "Asia/Shanghai", datetime(2026, 4, 1, tzinfo=UTC))
    assert once == datetime(2026, 5, 1, 1, 0, tzinfo=UTC)
    assert next_due("at", at, "Asia/Shanghai", once) is None
    assert parse_at("2026-05-01T09:00:00+02:00", "Asia/Shanghai") == datetime(2026, 5, 1, 7, 0, tzinfo=UTC)


def test_every_counts_from_the_last_due_time() -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    assert first_due("every", "90", "UTC", now) == now + timedelta(seconds=90)
    assert next_due("every", "0.5", "Europe/Berlin", now) == now + timedelta(seconds=0.5)


@pytest.mark.parametrize(
    ("kind", "expr", "tz", "field", "message"),
    [
        ("cron", "0 9 * * *", "Mars/Base", "timezone", "unknown time zone 'Mars/Base'"),
        ("at", "2026-05-01T09:00", "", "timezone", "unknown time zone ''"),
        ("at", "not-a-date", "UTC", "expr", "not an ISO-8601 date and time: 'not-a-date'"),
        ("cron", "every tuesday", "UTC", "expr", "invalid cron expression 'every tuesday'"),
        ("cron", "0 0 31 2 *", "UTC", "expr", "never matches"),
        ("every", "0", "UTC", "expr", "positive number of seconds"),
        ("every", "-5", "UTC", "expr", "positive number of seconds"),
        ("every", "nan", "UTC", "expr", "positive number of seconds"),
        ("every", "soon", "UTC", "expr", "not a number of seconds"),
        ("weekly", "1", "UTC", "kind", "unknown schedule kind"),
    ],
)
def test_a_schedule_that_cannot_be_scheduled_is_refused_naming_the_field(
    kind: str, expr: str, tz: str, field: str, message: str
) -> None:
    with pytest.raises(ScheduleError, match=message.replace("(", r"\(").replace("*", r"\*")) as err:
        check_schedule(kind, expr, tz)
    assert err.value.field == field


def test_good_schedules_pass() -> None:
    for kind, expr in (("cron", "*/5 9-17 * * 1-5"), ("cron", "@daily"), ("at", "2026-05-01"), ("every", "3600")):
        check_schedule(kind, expr, "America/Sao_Paulo")
