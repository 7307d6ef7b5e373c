"""The chaos run's verdict: a fault that could not be injected fails the run (it proved nothing), and what
each fault did is in its row of the table."""

from __future__ import annotations

import time

import pytest

from chaos.fakes import ChaosLLM, ChaosSink
from chaos.faults import Fault
from chaos.report import Result, compute, render


async def _noop(f: Fault) -> None:
    f.end()


def _run(faults: list[Fault]) -> Result:
    t0 = time.monotonic()
    return compute([], 1, ChaosSink({}), ChaosLLM(), [], 0, faults, t0, 1.0, 1.0, 2.0)


def test_a_fault_that_failed_to_inject_fails_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    now = time.monotonic()
    done = Fault("Kafka broker SIGKILL + restart", _noop, started=now, ended=now + 3, note="node 2 (controller 1)")
    assert _run([done]).ok
    broken = Fault("Kafka active controller SIGKILL + restart", _noop, started=now, ended=now,
                   error="LookupError: this fault needs Apache Kafka")
    r = _run([done, broken])
    assert not r.ok and r.lost == 0 and r.out_of_order == 0
    assert [f.note for f in r.faults] == ["node 2 (controller 1)", None]
    render(r)
    out = capsys.readouterr().out
    assert "node 2 (controller 1)" in out and "this fault needs Apache Kafka" in out and "FAIL" in out
