"""``python -m bench.compare [OLD.json NEW.json]``: two runs of ``make bench`` side by side.

Without arguments it compares the two newest results in bench/results/. For every scenario both runs have,
it prints throughput, latency, the five services' CPU per message and RSS, the broker's and PostgreSQL's CPU
per message, and the host figure (CPU ms of a fixed piece of Python work around the scenario). When the two
runs' host figures differ, every CPU and throughput difference smaller than theirs may be the host's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import orjson

from bench.report import SERVICES, label, render, services_total

RESULTS = Path(__file__).resolve().parent / "results"


def load(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise SystemExit(f"bench.compare: cannot read {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise SystemExit(f"bench.compare: {path} is not a result of make bench (no results list)")
    return data


def newest_two(folder: Path) -> tuple[Path, Path]:
    found = sorted(folder.glob("*.json"))
    if len(found) < 2:
        raise SystemExit(f"bench.compare: need two results in {folder}, found {len(found)}; "
                         "run make bench twice or name the files")
    return found[-2], found[-1]


def host(r: dict[str, Any]) -> float | None:
    """The scenario's host figure: the mean of the figures taken before and after it."""
    hm = r.get("host_ms") or {}
    values = [v for v in (hm.get("before"), hm.get("after")) if isinstance(v, (int, float))]
    return statistics.fmean(values) if values else None


def measures(r: dict[str, Any]) -> dict[str, tuple[float | None, bool | None]]:
    """name -> (value, higher is better; None when neither is) for one scenario's result."""
    procs = r.get("processes") or {}
    cpu_total, rss_total = services_total(r, "cpu_s_per_1k"), services_total(r, "final_rss_mb")

    def cpu(name: str) -> float | None:
        p = procs.get(name)
        return p.get("cpu_s_per_1k") if p else None

    out: dict[str, tuple[float | None, bool | None]] = {
        "msg/s": (r.get("msg_per_s"), True),
        "accept/s": (r.get("accept_per_s"), True),
        "e2e p50 ms": ((r.get("e2e_ms") or {}).get("p50"), False),
        "e2e p99 ms": ((r.get("e2e_ms") or {}).get("p99"), False),
        "platform p99 ms": ((r.get("platform_ms") or {}).get("p99"), False),
        "five services CPU ms/msg": (round(cpu_total, 3) if cpu_total is not None else None, False),
    }
    for name in (*SERVICES, "broker", "postgres"):
        if name != "scheduler":
            out[f"  {name} CPU ms/msg"] = (cpu(name), False)
    out["five services RSS MB (final)"] = (round(rss_total, 1) if rss_total is not None else None, False)
    if r.get("llm_max_in_flight") and r.get("llm_delay_s"):
        out["LLM calls in flight (max)"] = (r["llm_max_in_flight"], True)
    out["host ms (higher: slower host)"] = (host(r), None)
    return out


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}"


def change(old: float | None, new: float | None, higher_is_better: bool | None) -> str:
    """The new value relative to the old, and whether that is better, worse or the same."""
    if old is None or new is None:
        return "-"
    if old == 0:
        return "same" if new == 0 else "new"
    pct = (new - old) / abs(old) * 100
    if abs(pct) < 0.5:
        return "same"
    if higher_is_better is None:
        return f"{pct:+.1f}%"
    better = (pct > 0) == higher_is_better
    return f"{pct:+.1f}% {'better' if better else 'worse'}"


def compare(old: dict[str, Any], new: dict[str, Any], old_name: str, new_name: str) -> str:
    olds = {label(r): r for r in old["results"]}
    news = {label(r): r for r in new["results"]}
    common = [s for s in olds if s in news and not s.startswith("baseline")]
    parts = [f"bench compare  old: {old_name}  new: {new_name}"]
    if not common:
        parts.append("no scenario in common (the baselines are not compared)")
        return "\n".join(parts)
    for name in common:
        a, b = measures(olds[name]), measures(news[name])
        rows = [[name, "old", "new", "change"]]
        for key, (va, better_up) in a.items():
            vb = b.get(key, (None, better_up))[0]
            if va is None and vb is None:
                continue
            rows.append([key, _num(va), _num(vb), change(va, vb, better_up)])
        parts += ["", render(rows)]
        la, lb = olds[name].get("load") or {}, news[name].get("load") or {}
        differs = {k for k in ("count", "conversations", "mode", "rate", "concurrency") if la.get(k) != lb.get(k)}
        if differs:
            parts.append("  the load differs: " + ", ".join(f"{k} {la.get(k)} -> {lb.get(k)}" for k in sorted(differs)))
        ha, hb = host(olds[name]), host(news[name])
        if ha and hb and abs(hb - ha) / ha >= 0.05:
            parts.append(f"  the host itself was {abs(hb - ha) / ha * 100:.0f}% "
                         f"{'slower' if hb > ha else 'faster'} in the new run: differences of that size in CPU "
                         "and throughput may be the host's, not the code's")
        elif ha is None or hb is None:
            parts.append("  a run has no host figure (made before the bench measured it): CPU and throughput "
                         "differences may be the host's")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path, help="OLD.json NEW.json (default: the newest two)")
    a = ap.parse_args(argv)
    if len(a.files) not in (0, 2):
        ap.error("give two result files, or none for the newest two in bench/results/")
    old_path, new_path = a.files if a.files else newest_two(RESULTS)
    print(compare(load(old_path), load(new_path), old_path.name, new_path.name))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
