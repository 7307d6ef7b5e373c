"""Driving one load through the platform and turning the records into numbers.

Latency of a message is measured from ingress's 2xx (at the load generator) to the push's arrival at the
sink; the platform's own share subtracts the time the fake LLM and fake embeddings servers say they spent
on that message (its LLM call, and the union of its user turn's embedding requests).
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.platform import Bench, Peer, child_env


@dataclass
class Load:
    count: int
    conversations: int
    mode: str = "closed"  # open | closed
    rate: float = 1000.0
    concurrency: int = 64
    start: int = 0  # first message index: tags ([m<i>]) must not repeat within a scenario


WARMUP_START = 100_000_000  # warm-up messages' indices, apart from the measured ones


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def dist_ms(xs: list[float]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
        v = pct(xs, q)
        out[name] = None if v is None else round(1000 * v, 2)
    out["max"] = None if not xs else round(1000 * max(xs), 2)
    return out


async def drive(bench: Bench, url: str, channels: list[tuple[str, str]], run: str, load: Load) -> dict[str, Any]:
    """Run the load generator process to completion; returns its summary plus the record file."""
    out = bench.home / "records" / f"load-{run}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    spec = {"url": url, "channels": channels, "run": run, "out": str(out), **asdict(load)}
    spec_path = bench.home / "records" / f"load-{run}.json"
    spec_path.write_bytes(orjson.dumps(spec))
    with open(bench.home / "logs" / f"load-{run}.log", "ab") as err:  # noqa: ASYNC230 - handed to the child
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.load", str(spec_path), stdout=asyncio.subprocess.PIPE, stderr=err,
            stdin=asyncio.subprocess.DEVNULL, env=child_env())
    bench.sampler.add("loadgen", proc.pid, group="peer")
    try:
        stdout, _ = await proc.communicate()
    except BaseException:  # interrupted: the generator must not outlive the run
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    finally:
        target = bench.sampler.targets.get("loadgen")
        bench.sampler.remove("loadgen")
    lines = stdout.decode().strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"load generator failed ({proc.returncode}); see logs/load-{run}.log")
    summary: dict[str, Any] = orjson.loads(lines[-1])
    summary["records"] = str(out)
    summary["peak_rss_bytes"] = target.peak_rss if target is not None else 0
    return summary


async def wait_pushes(sink: Peer, expected: int, stall_s: float, limit_s: float) -> dict[str, Any]:
    """Wait until the sink has ``expected`` pushes, or nothing arrived for ``stall_s``, or ``limit_s``."""
    t0 = time.monotonic()
    last_n, last_change = -1, t0
    while True:
        n = (await sink.get("/stats"))["pushes"]
        now = time.monotonic()
        if n != last_n:
            last_n, last_change = n, now
        if n >= expected:
            return {"pushes": n, "stalled": False, "waited_s": now - t0}
        if now - last_change > stall_s or now - t0 > limit_s:
            return {"pushes": n, "stalled": True, "waited_s": now - t0, "idle_s": now - last_change}
        await asyncio.sleep(0.1)


def new_run(name: str) -> str:
    return f"{name.replace('-', '')}{uuid.uuid4().hex[:6]}"


def read_lines(path: Path | None) -> list[list[str]]:
    if path is None or not Path(path).exists():
        return []
    with open(path, encoding="ascii") as f:
        return [line.split() for line in f if line.strip()]


def analyse(run: str, load_file: Path, sink_file: Path, llm_file: Path | None = None,
            emb_file: Path | None = None) -> dict[str, Any]:
    sent: dict[int, tuple[float, float, float, int]] = {}
    for i, sched, s, done, status in read_lines(load_file):
        sent[int(i)] = (float(sched), float(s), float(done), int(status))
    ok = {i: v for i, v in sent.items() if 200 <= v[3] < 300}
    prefix = f"bm_{run}_"
    arrivals: dict[int, list[float]] = defaultdict(list)
    foreign = 0
    for reply_to, at in read_lines(sink_file):
        if reply_to.startswith(prefix):
            arrivals[int(reply_to[len(prefix):])].append(float(at))
        else:
            foreign += 1
    llm: dict[int, float] = defaultdict(float)
    llm_calls: dict[int, int] = defaultdict(int)
    for i, start, end in read_lines(llm_file):
        llm[int(i)] += float(end) - float(start)
        llm_calls[int(i)] += 1
    spans: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for start, end, *tags in read_lines(emb_file):
        for t in set(tags):
            spans[int(t)].append((float(start), float(end)))
    emb = {i: _union(v) for i, v in spans.items()}

    e2e, own, ingress, fake_llm, fake_emb = [], [], [], [], []
    for i, (sched, _, done, _) in ok.items():
        ingress.append(done - sched)
        got = arrivals.get(i)
        if not got:
            continue
        d = min(got) - done
        e2e.append(d)
        fake_llm.append(llm.get(i, 0.0))
        fake_emb.append(emb.get(i, 0.0))
        own.append(d - llm.get(i, 0.0) - emb.get(i, 0.0))
    delivered = sum(1 for i in ok if arrivals.get(i))
    first_send = min((v[1] for v in sent.values()), default=0.0)
    last_done = max((v[2] for v in sent.values()), default=0.0)
    last_arrival = max((max(v) for v in arrivals.values()), default=0.0)
    missing = sorted(i for i in ok if not arrivals.get(i))
    span = last_arrival - first_send if delivered else 0.0
    return {
        "sent": len(sent),
        "accepted": len(ok),
        "http_errors": len(sent) - len(ok),
        "delivered": delivered,
        "missing": len(missing),
        "missing_examples": [f"{prefix}{i}" for i in missing[:5]],
        "duplicate_pushes": sum(len(v) - 1 for v in arrivals.values() if len(v) > 1),
        "pushes_without_2xx": sum(1 for i in arrivals if i not in ok),
        "foreign_pushes": foreign,
        "llm_calls": sum(llm_calls[i] for i in ok) if llm_file else None,
        "messages_with_repeated_llm_calls": sum(1 for i in ok if llm_calls.get(i, 0) > 1) if llm_file else None,
        "send_s": round(last_done - first_send, 3),
        "span_s": round(span, 3),
        "accept_per_s": round(len(ok) / (last_done - first_send), 1) if last_done > first_send else None,
        "msg_per_s": round(delivered / span, 1) if span > 0 else None,
        "ingress_ms": dist_ms(ingress),
        "e2e_ms": dist_ms(e2e),
        "platform_ms": dist_ms(own) if (llm_file or emb_file) else None,
        "fake_llm_ms_mean": round(1000 * sum(fake_llm) / len(fake_llm), 3) if fake_llm and llm_file else None,
        "fake_embeddings_ms_mean": round(1000 * sum(fake_emb) / len(fake_emb), 3) if fake_emb and emb_file else None,
    }


def _union(iv: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for s, e in sorted(iv):
        if s > end:
            total += e - s
            end = e
        elif e > end:
            total += e - end
            end = e
    return total


def process_usage(bench: Bench, cpu0: dict[str, float], cpu1: dict[str, float], delivered: int,
                  extra: dict[str, tuple[float, int]] | None = None) -> dict[str, dict[str, Any]]:
    """CPU seconds (and per 1,000 delivered messages), peak and final RSS of every sampled process."""
    out: dict[str, dict[str, Any]] = {}
    per = 1000.0 / delivered if delivered else 0.0
    for name, t in bench.sampler.targets.items():
        cpu = cpu1.get(name, 0.0) - cpu0.get(name, 0.0)
        out[name] = {"group": t.group, "cpu_s": round(cpu, 3), "cpu_s_per_1k": round(cpu * per, 3),
                     "peak_rss_mb": round(t.peak_rss / 2**20, 1), "final_rss_mb": round(t.last_rss / 2**20, 1)}
    for name, (cpu, rss) in (extra or {}).items():
        out[name] = {"group": "peer", "cpu_s": round(cpu, 3), "cpu_s_per_1k": round(cpu * per, 3),
                     "peak_rss_mb": round(rss / 2**20, 1), "final_rss_mb": None}
    return out
