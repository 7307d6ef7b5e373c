"""The soak: a steady open-loop rate for a long time, sampling every process's RSS and the latency over
time, then plotting both to PNG and fitting the slope of RSS over the second half (nothing should grow)."""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.measure import WARMUP_START, Load, dist_ms, drive, new_run, wait_pushes
from bench.platform import Bench
from bench.scenarios import TENANTS, Options, machine_busy, other_load, pipeline_config, secret_for
from bench.tables import growth, table_sizes

SERVICES = ("ingress", "memory", "reasoner", "scheduler", "egress")
CPU_SERIES = (*SERVICES, "broker", "postgres")
WINDOW_S = 10.0


class Tail:
    """New complete lines of a file that another process appends to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def read(self) -> list[list[str]]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        return [line.split() for line in data[:end].decode("ascii").splitlines() if line.strip()]


def slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MB) in MB per hour."""
    n = len(points)
    if n < 3:
        return None
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    if sxx == 0:
        return None
    return 3600 * sum((p[0] - mx) * (p[1] - my) for p in points) / sxx


async def run_soak(bench: Bench, opts: Options, a: argparse.Namespace, out_dir: Path,
                   started: datetime) -> dict[str, Any]:
    count = int(min(a.soak_messages, a.soak_rate * a.soak_max_s))
    sink = await bench.start_peer("sink", "sink", *[x for t in TENANTS for x in ("--secret", f"{t}={secret_for(t)}")])
    llm = await bench.start_peer("fake-llm", "llm", record=False)
    emb = await bench.start_peer("fake-embeddings", "embeddings", "--dim", str(opts.dim), record=False)
    platform = await bench.start_platform(
        pipeline_config(sink.url, llm.url + "/v1"),
        {"AGENTBUS_EMBEDDINGS_URL": emb.url + "/v1", "AGENTBUS_EMBEDDINGS_DIM": str(opts.dim)})
    channels = [(t, secret_for(t)) for t in TENANTS]
    bench.sampler.interval_s = 2.0
    try:
        await drive(bench, platform.webhooks_url, channels, new_run("warm"),
                    Load(20, 20, "closed", 0, 8, WARMUP_START))
        await wait_pushes(sink, 20, opts.stall_s, 120)
        run = new_run("soak")
        database_url, suffix = bench.infra_env["AGENTBUS_DATABASE_URL"], f"_{platform.prefix}"
        tables0 = await table_sizes(database_url, suffix)
        bench.sampler.series.clear()
        bench.sampler.keep_series = True
        t0 = time.monotonic()
        m0 = machine_busy()
        cpu0 = bench.sampler.cpu()
        loader = asyncio.create_task(drive(bench, platform.webhooks_url, channels, run,
                                           Load(count, a.soak_conversations, "open", a.soak_rate, opts.concurrency)))
        load_tail = Tail(bench.home / "records" / f"load-{run}.txt")
        assert sink.out is not None
        sink_tail = Tail(sink.out)
        done_at: dict[int, float] = {}
        windows: list[dict[str, Any]] = []
        stats = {"accepted": 0, "errors": 0, "delivered": 0, "duplicates": 0}
        pushed: set[int] = set()
        prefix = f"bm_{run}_"
        all_e2e: list[float] = []
        cpu_before = dict(cpu0)

        def collect() -> None:
            for i, _sched, _sent, done, status in load_tail.read():
                if 200 <= int(status) < 300:
                    done_at[int(i)] = float(done)
                    stats["accepted"] += 1
                else:
                    stats["errors"] += 1
            lat: list[float] = []
            arrivals = 0
            for reply_to, at in sink_tail.read():
                if not reply_to.startswith(prefix):
                    continue
                i = int(reply_to[len(prefix):])
                if i in pushed:
                    stats["duplicates"] += 1
                    continue
                pushed.add(i)
                arrivals += 1
                d = done_at.pop(i, None)
                if d is not None:
                    lat.append(float(at) - d)
            stats["delivered"] += arrivals
            all_e2e.extend(lat)
            # CPU per message pushed in this window, per process: a cost that grows with time shows here
            cpu_now = bench.sampler.cpu()
            per_msg = {n: round((c - cpu_before.get(n, 0.0)) * 1000 / arrivals, 3) for n, c in cpu_now.items()
                       if n in CPU_SERIES} if arrivals else {}
            cpu_before.update(cpu_now)
            windows.append({"t": round(time.monotonic() - t0, 1), "pushes_per_s": arrivals / WINDOW_S,
                            "backlog": stats["accepted"] - stats["delivered"], **dist_ms(lat),
                            "cpu_ms_per_msg": per_msg})

        last_progress, last_delivered = time.monotonic(), 0
        sent_end: float | None = None
        drain_s = max(120.0, count / a.soak_rate / 4)  # after the last send, wait this long for the backlog
        while True:
            await asyncio.sleep(WINDOW_S)
            await sink.flush()
            collect()
            now = time.monotonic()
            if stats["delivered"] != last_delivered:
                last_delivered, last_progress = stats["delivered"], now
            if loader.done():
                sent_end = sent_end or now
                if stats["delivered"] >= stats["accepted"] or now - sent_end > drain_s:
                    break
            if now - last_progress > max(opts.stall_s, 3 * WINDOW_S):
                break
            w = windows[-1]
            print(f"soak: {w['t']:.0f}s accepted {stats['accepted']:,} pushed {stats['delivered']:,} "
                  f"p50 {w['p50']} ms p99 {w['p99']} ms", flush=True, file=__import__("sys").stderr)
        summary = await loader if loader.done() else None
        if summary is None:
            loader.cancel()
        cpu1 = bench.sampler.cpu()
        m1 = machine_busy()
        duration = time.monotonic() - t0
        bench.sampler.keep_series = False
        series = list(bench.sampler.series)
        result = _summarise(series, t0, stats, count, a, duration, all_e2e)
        per = 1000.0 / max(stats["delivered"], 1)
        result["processes"] = {n: {"cpu_s_per_1k": round((cpu1[n] - cpu0.get(n, 0.0)) * per, 3),
                                   "peak_rss_mb": round(t.peak_rss / 2**20, 1),
                                   "final_rss_mb": round(t.last_rss / 2**20, 1)}
                               for n, t in bench.sampler.targets.items() if n in cpu1}
        result["machine"] = other_load(m0, m1, {k: {"cpu_s": (cpu1[k] - cpu0.get(k, 0.0))} for k in cpu1})
        result["windows"] = windows
        result["cpu_ms_per_msg"] = cpu_trend(windows)
        result["loadgen"] = summary
        # the tables retention prunes (it starts after days: a soak sees how fast each grows per message)
        result["tables"] = growth(tables0, await table_sizes(database_url, suffix), stats["delivered"])
        result["plots"] = plot(series, windows, t0, out_dir, started.strftime("%Y%m%dT%H%M%SZ"))
        return result
    finally:
        await bench.stop_platform(platform)
        await bench.stop_peers()


def _summarise(series: list[tuple[float, dict[str, int]]], t0: float, stats: dict[str, int], count: int,
               a: argparse.Namespace, duration: float, e2e: list[float]) -> dict[str, Any]:
    half = [(t - t0, rss) for t, rss in series if t - t0 >= duration / 2]
    names = sorted({n for _, rss in series for n in rss})
    slopes: dict[str, float] = {}
    for n in [*SERVICES, "five services", "broker", "postgres"]:
        pts = [(t, (sum(r.get(s, 0) for s in SERVICES) if n == "five services" else r.get(n, 0)) / 2**20)
               for t, r in half]
        s = slope_per_hour(pts)
        if s is not None:
            slopes[n] = round(s, 2)
    final = series[-1][1] if series else {}
    final_mb = {n: round(final.get(n, 0) / 2**20, 1) for n in names}
    return {
        "scenario": "soak", "target_rate": a.soak_rate, "messages": count,
        "conversations": a.soak_conversations, "accepted": stats["accepted"], "http_errors": stats["errors"],
        "delivered": stats["delivered"], "missing": stats["accepted"] - stats["delivered"],
        "drained": stats["delivered"] >= stats["accepted"],
        "duplicate_pushes": stats["duplicates"], "duration_s": round(duration, 1),
        "accept_per_s": round(stats["accepted"] / duration, 1) if duration else None,
        "e2e_ms": dist_ms(e2e), "rss_slope_mb_per_h": slopes, "final_rss_mb": final_mb,
        "services_final_rss_mb": round(sum(final_mb.get(s, 0.0) for s in SERVICES), 1),
    }


def cpu_trend(windows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each process's CPU ms per message in the first and the last fifth of the windows (mean over the
    fifth's messages): equal figures mean a process costs the same per message at the end as at the start."""
    busy = [w for w in windows if w.get("cpu_ms_per_msg")]
    if len(busy) < 5:
        return {}
    fifth = len(busy) // 5
    out: dict[str, dict[str, float]] = {}
    for n in CPU_SERIES:
        parts = []
        for ws in (busy[:fifth], busy[-fifth:]):
            msgs = sum(w["pushes_per_s"] * WINDOW_S for w in ws)
            cpu = sum(w["cpu_ms_per_msg"].get(n, 0.0) * w["pushes_per_s"] * WINDOW_S for w in ws)
            parts.append(round(cpu / msgs, 2) if msgs else 0.0)
        out[n] = {"first_fifth": parts[0], "last_fifth": parts[1]}
    return out


def plot(series: list[tuple[float, dict[str, int]]], windows: list[dict[str, Any]], t0: float, out_dir: Path,
         stamp: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[str] = []

    def save(fig: Any, name: str) -> None:
        p = out_dir / f"{stamp}-soak-{name}.png"
        fig.savefig(p, dpi=100, bbox_inches="tight")
        plt.close(fig)
        paths.append(str(p))
    fig, ax = plt.subplots(figsize=(11, 6))
    names = sorted({n for _, rss in series for n in rss})
    xs = [(t - t0) / 60 for t, _ in series]
    for n in names:
        ax.plot(xs, [r.get(n, 0) / 2**20 for _, r in series], label=n, linewidth=1)
    ax.plot(xs, [sum(r.get(s, 0) for s in SERVICES) / 2**20 for _, r in series], label="five services",
            linewidth=2.5, color="black")
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MB)")
    ax.set_title("agentbus soak: resident memory of every process")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    save(fig, "rss")

    fig, ax = plt.subplots(figsize=(11, 6))
    wx = [w["t"] / 60 for w in windows]
    for key in ("p50", "p99"):
        ax.plot(wx, [w[key] if w[key] is not None else float("nan") for w in windows], label=f"e2e {key} (ms)")
    ax.set_yscale("log")
    ax.set_xlabel("minutes")
    ax.set_ylabel("latency, webhook 2xx to push (ms)")
    ax2 = ax.twinx()
    ax2.plot(wx, [w["pushes_per_s"] for w in windows], color="grey", linestyle=":", label="pushes/s")
    ax2.set_ylabel("pushes per second")
    ax.set_title(f"agentbus soak: latency per {WINDOW_S:.0f} s window")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8)
    ax.grid(alpha=0.3)
    save(fig, "latency")

    fig, ax = plt.subplots(figsize=(11, 6))
    busy = [w for w in windows if w.get("cpu_ms_per_msg")]
    for n in CPU_SERIES:
        ax.plot([w["t"] / 60 for w in busy], [w["cpu_ms_per_msg"].get(n, float("nan")) for w in busy], label=n,
                linewidth=2.5 if n == "broker" else 1)
    ax.set_xlabel("minutes")
    ax.set_ylabel("CPU ms per message pushed")
    ax.set_title(f"agentbus soak: CPU per message of every process, per {WINDOW_S:.0f} s window")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    save(fig, "cpu")
    return paths
