"""The bench's host reference: CPU time of a fixed piece of work, so runs on a noisy host can be compared."""

from __future__ import annotations

import gc

from bench.scenarios import host_speed


def test_host_speed_is_cpu_milliseconds_and_leaves_the_collector_as_it_was() -> None:
    assert gc.isenabled()
    assert host_speed(1) > 1.0  # milliseconds of real work, not a timer's resolution
    assert gc.isenabled()  # measured without the collector, which is switched back on
    gc.disable()
    try:
        assert host_speed(1) > 1.0
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()
