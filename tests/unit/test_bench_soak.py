"""The soak's trend figures: RSS slope, and each process's CPU per message at the start and at the end."""

from __future__ import annotations

import pytest

from bench.soak import cpu_trend, slope_per_hour


def test_slope_is_mb_per_hour_and_needs_three_points() -> None:
    assert slope_per_hour([(0.0, 100.0), (1800.0, 110.0), (3600.0, 120.0)]) == pytest.approx(20.0)
    assert slope_per_hour([(0.0, 100.0), (60.0, 100.0), (120.0, 100.0)]) == 0.0
    assert slope_per_hour([(0.0, 1.0), (1.0, 2.0)]) is None


def window(rate: float, broker_ms: float, memory_ms: float) -> dict[str, object]:
    return {"pushes_per_s": rate, "cpu_ms_per_msg": {"broker": broker_ms, "memory": memory_ms}}


def test_cpu_trend_compares_the_first_and_last_fifth_weighted_by_messages() -> None:
    # the broker's cost per message doubles over the run; memory's stays flat
    windows = [window(100.0, 1.0 + i / 9, 2.0) for i in range(10)]
    trend = cpu_trend(windows)
    assert trend["memory"] == {"first_fifth": 2.0, "last_fifth": 2.0}
    assert trend["broker"]["first_fifth"] == pytest.approx((1.0 + 1 + 1 / 9) / 2, abs=0.01)
    assert trend["broker"]["last_fifth"] == pytest.approx((1 + 8 / 9 + 2.0) / 2, abs=0.01)
    # a window with more messages weighs more
    weighted = cpu_trend([window(300.0, 1.0, 1.0), window(100.0, 5.0, 1.0), *[window(100.0, 1.0, 1.0)] * 8])
    assert weighted["broker"]["first_fifth"] == pytest.approx((300 * 1.0 + 100 * 5.0) / 400)


def test_cpu_trend_skips_idle_windows_and_short_runs() -> None:
    assert cpu_trend([window(100.0, 1.0, 1.0)] * 4) == {}
    idle = {"pushes_per_s": 0.0, "cpu_ms_per_msg": {}}
    trend = cpu_trend([idle, *[window(100.0, 1.0, 1.0)] * 5, idle])
    assert trend["broker"] == {"first_fifth": 1.0, "last_fifth": 1.0}


def test_table_growth_is_reported_per_thousand_messages() -> None:
    from bench.report import soak_text
    from bench.tables import growth

    start = {"memory.turns": (100, 1_048_576)}
    end = {"memory.turns": (2100, 3_145_728), "egress.deliveries": (1000, 524_288)}
    report = growth(start, end, messages=1000)
    assert report["memory.turns"] == {"rows": 2100, "mb": 3.0, "rows_per_1k_msgs": 2000.0, "kb_per_1k_msgs": 2048.0}
    assert report["egress.deliveries"]["rows_per_1k_msgs"] == 1000.0  # created during the run
    soak = {"delivered": 1000, "accepted": 1000, "target_rate": 10, "accept_per_s": 10, "duration_s": 100,
            "e2e_ms": {}, "drained": True, "missing": 0, "duplicate_pushes": 0, "http_errors": 0, "tables": report}
    assert "memory.turns 2,100 (+2,000, +2,048 KB)" in soak_text(soak)
