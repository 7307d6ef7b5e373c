"""The bench's host reference: CPU time of a fixed piece of work, so runs on a noisy host can be compared."""

from __future__ import annotations

from bench.scenarios import host_speed


def test_host_speed_measures_the_same_work_each_time() -> None:
    figures = [host_speed(1) for _ in range(3)]
    assert all(f > 1.0 for f in figures)  # milliseconds of real work, not a timer's resolution
    assert max(figures) < 10 * min(figures)  # the same work: a noisy host moves it by a third, not tenfold
