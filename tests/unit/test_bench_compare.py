"""bench.compare puts two runs side by side and says when the host, not the code, may explain a difference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.compare import change, compare, load, main, newest_two


def run(msg_per_s: float, memory_cpu: float, host: tuple[float, float] | None, rate: float = 300.0,
        scenario: str = "pipeline-closed") -> dict[str, Any]:
    procs = {name: {"cpu_s_per_1k": 0.5, "final_rss_mb": 90.0, "peak_rss_mb": 95.0}
             for name in ("ingress", "reasoner", "scheduler", "egress", "broker", "postgres")}
    procs["memory"] = {"cpu_s_per_1k": memory_cpu, "final_rss_mb": 130.0, "peak_rss_mb": 140.0}
    r: dict[str, Any] = {
        "scenario": scenario, "msg_per_s": msg_per_s, "accept_per_s": 2 * msg_per_s,
        "e2e_ms": {"p50": 40.0, "p99": 120.0}, "platform_ms": {"p50": 39.0, "p99": 118.0},
        "processes": procs, "load": {"count": 2000, "conversations": 200, "mode": "closed", "rate": rate,
                                     "concurrency": 64},
    }
    if host is not None:
        r["host_ms"] = {"before": host[0], "after": host[1]}
    return r


def table(text: str) -> dict[str, list[str]]:
    """The rows of a comparison, by measure, as their cells."""
    rows = {}
    for line in text.splitlines():
        cells = [c for c in line.split("  ") if c.strip()]
        if len(cells) >= 4:
            rows[cells[0].strip()] = [c.strip() for c in cells[1:]]
    return rows


def test_each_measure_old_new_and_which_way_it_moved() -> None:
    old = {"results": [run(400.0, 1.2, (40.0, 40.0))]}
    new = {"results": [run(500.0, 0.9, (40.0, 41.0))]}
    text = compare(old, new, "a.json", "b.json")
    rows = table(text)
    assert rows["msg/s"] == ["400", "500", "+25.0% better"]
    assert rows["memory CPU ms/msg"] == ["1.20", "0.90", "-25.0% better"]
    # five services: ingress, reasoner, scheduler, egress at 0.5 each, plus memory
    assert rows["five services CPU ms/msg"] == ["3.20", "2.90", "-9.4% better"]
    assert rows["e2e p99 ms"] == ["120", "120", "same"]
    assert rows["five services RSS MB (final)"] == ["490", "490", "same"]
    assert "host itself" not in text  # 2.5% apart: the same host speed


def test_a_slower_host_and_a_different_load_are_called_out() -> None:
    old = {"results": [run(400.0, 1.2, (40.0, 40.0))]}
    new = {"results": [run(300.0, 1.6, (52.0, 52.0), rate=1000.0)]}
    text = compare(old, new, "a.json", "b.json")
    assert table(text)["host ms (higher: slower host)"] == ["40.00", "52.00", "+30.0%"]
    assert "the host itself was 30% slower in the new run" in text
    assert "the load differs: rate 300.0 -> 1000.0" in text
    unknown = compare({"results": [run(400.0, 1.2, None)]}, new, "a.json", "b.json")
    assert "a run has no host figure" in unknown


def test_only_scenarios_in_both_runs_are_compared() -> None:
    old = {"results": [run(400.0, 1.2, (40.0, 40.0), scenario="pipeline-open"),
                       {"scenario": "baseline-broker", "max": {"msg_per_s": 9000.0}}]}
    new = {"results": [run(400.0, 1.2, (40.0, 40.0), scenario="pipeline-closed"),
                       {"scenario": "baseline-broker", "max": {"msg_per_s": 8000.0}}]}
    assert "no scenario in common" in compare(old, new, "a.json", "b.json")


def test_change_reads_the_direction_of_each_measure() -> None:
    assert change(100.0, 110.0, True) == "+10.0% better"
    assert change(100.0, 110.0, False) == "+10.0% worse"
    assert change(100.0, 100.2, False) == "same"
    assert change(None, 1.0, True) == "-"
    assert change(0.0, 0.0, True) == "same"
    assert change(2.0, 1.0, None) == "-50.0%"


def test_files_the_newest_two_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for stamp, rate in (("20260101T000000Z", 100.0), ("20260102T000000Z", 200.0), ("20260103T000000Z", 300.0)):
        (tmp_path / f"{stamp}.json").write_bytes(orjson.dumps({"meta": {}, "results": [run(rate, 1.0, None)]}))
    old, new = newest_two(tmp_path)
    assert (old.name, new.name) == ("20260102T000000Z.json", "20260103T000000Z.json")
    main([str(old), str(new)])
    out = capsys.readouterr().out
    assert "old: 20260102T000000Z.json  new: 20260103T000000Z.json" in out
    assert table(out)["msg/s"] == ["200", "300", "+50.0% better"]

    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(SystemExit, match="cannot read"):
        load(tmp_path / "broken.json")
    (tmp_path / "other.json").write_text('{"something": 1}')
    with pytest.raises(SystemExit, match="not a result of make bench"):
        load(tmp_path / "other.json")
    with pytest.raises(SystemExit, match="need two results"):
        newest_two(tmp_path / "nothing-here")
