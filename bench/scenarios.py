"""The scenarios of a run: the pipeline (open and closed loop), a slow LLM, the embedded default stack,
and the baselines (the broker alone, a bare HTTP endpoint) that show the platform's overhead as ratios."""

from __future__ import annotations

import asyncio
import base64
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from bench.measure import WARMUP_START, Load, analyse, drive, new_run, process_usage, wait_pushes
from bench.platform import Bench, Peer, Platform, child_env

TENANTS = ("acme", "globex")
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Options:
    messages: int = 20000
    conversations: int = 2000
    rate: float = 1000.0
    concurrency: int = 64
    slow_conversations: int = 2000
    slow_delay_s: float = 2.0
    embedded_messages: int = 2000
    embedded_conversations: int = 200
    warmup: int = 50
    stall_s: float = 60.0
    limit_s: float = 900.0
    dim: int = 384


def machine_busy() -> tuple[float, float, float]:
    """(monotonic, busy CPU seconds of the whole machine, CPU seconds of this harness process)."""
    import time

    import psutil

    t = psutil.cpu_times()
    me = psutil.Process().cpu_times()
    return time.monotonic(), sum(t) - t.idle - getattr(t, "iowait", 0.0), me.user + me.system


def host_speed(repeats: int = 5) -> float:
    """CPU milliseconds this host takes for a fixed piece of pure-Python work (dicts, JSON, strings), the
    median of ``repeats``. Every per-message CPU figure scales with it: on a shared virtual machine it moved
    from 32 to 53 ms within one run, so two runs compare only as far as their host figures agree."""
    import gc
    import json
    import statistics
    import time

    def once() -> float:
        started = time.process_time()
        counts: dict[int, int] = {}
        for i in range(100_000):
            counts[i % 997] = counts.get(i % 997, 0) + i
        text = json.dumps([{"id": i, "text": f"message {i}", "tags": ["a", "b"]} for i in range(10_000)])
        json.loads(text)
        return (time.process_time() - started) * 1000

    # without the collector: a pass over a big heap (the harness holds every latency of the run) would be
    # counted as the host's slowness (measured: one repeat of ten took 434 ms instead of 40)
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        return round(statistics.median(once() for _ in range(repeats)), 1)
    finally:
        if was_enabled:
            gc.enable()


def other_load(m0: tuple[float, float, float], m1: tuple[float, float, float],
               processes: dict[str, dict[str, Any]]) -> dict[str, float]:
    """How busy the machine was, and how much of that was work outside this run (other programs)."""
    import os

    wall = max(m1[0] - m0[0], 1e-9)
    busy = m1[1] - m0[1]
    ours = sum(p["cpu_s"] for p in processes.values()) + (m1[2] - m0[2])
    return {"cores": os.cpu_count() or 0, "busy_cores": round(busy / wall, 2),
            "run_cores": round(ours / wall, 2), "other_cores": round(max(0.0, busy - ours) / wall, 2)}


def secret_for(name: str) -> str:
    return "whsec_" + base64.b64encode(f"bench-secret-{name}-0123456789".encode()).decode()


def pipeline_config(sink_url: str, llm_url: str, semantic: bool = True, tools: bool = False) -> dict[str, Any]:
    return {
        "tenants": [{"id": t} for t in TENANTS],
        "agents": [{"id": "assistant", "system_prompt": "You are a helpful assistant. Answer briefly.",
                    "model": "fake", "tools": ["now"] if tools else [],
                    "memory": {"history_turns": 10, "recall_top_k": 3, "semantic": semantic}}],
        "models": [{"name": "fake", "base_url": llm_url, "model": "fake-model", "timeout_s": 30}],
        "channels": [{"id": t, "type": "webhook", "tenant": t, "agent": "assistant",
                      "secret": {"env": f"BENCH_SECRET_{t.upper()}", "default": secret_for(t)},
                      "push_url": f"{sink_url}/push/{t}"} for t in TENANTS],
        "jobs": [],
    }


async def measured(bench: Bench, name: str, platform: Platform, channels: list[tuple[str, str]], load: Load,
                   opts: Options, llm: Peer | None = None, emb: Peer | None = None) -> dict[str, Any]:
    """Warm up, then drive ``load`` and wait for every accepted message's push (or a stall)."""
    sink = bench.peers["sink"]
    url = platform.webhooks_url
    bench.sampler.reset_peaks()
    warm: dict[str, Any] = {}
    if opts.warmup:
        await drive(bench, url, channels, new_run("warm"),
                    Load(opts.warmup, opts.warmup, "closed", 0, 16, WARMUP_START))
        warm = await wait_pushes(sink, opts.warmup, opts.stall_s, 120)
    before = (await sink.get("/stats"))["pushes"]
    if llm is not None:
        await llm.get("/stats")
        import httpx

        async with httpx.AsyncClient() as c:
            await c.post(llm.url + "/reset")
    run = new_run(name)
    cpu0 = bench.sampler.cpu()
    machine0 = machine_busy()
    summary = await drive(bench, url, channels, run, load)
    waited = await wait_pushes(sink, before + summary["ok"], opts.stall_s, opts.limit_s)
    cpu1 = bench.sampler.cpu()
    machine1 = machine_busy()
    for p in (sink, llm, emb):
        if p is not None:
            await p.flush()
    result = analyse(run, Path(summary["records"]), sink.out,  # type: ignore[arg-type]
                     llm.out if llm is not None else None, emb.out if emb is not None else None)
    result.update(scenario=name, load=load.__dict__, load_errors=summary["errors"], wait=waited, warmup=warm,
                  sink=await sink.get("/stats"))
    if llm is not None:
        stats = await llm.get("/stats")
        result["llm_max_in_flight"] = stats["max_in_flight"]
        result["llm_requests"] = stats["requests"]
    result["processes"] = process_usage(bench, cpu0, cpu1, result["delivered"],
                                        {"loadgen": (summary["cpu_s"], summary["peak_rss_bytes"])})
    result["machine"] = other_load(machine0, machine1, result["processes"])
    result.update(await service_metrics(platform))
    exited = bench.exited(platform)
    if exited:
        result["services_exited"] = {n: {"code": c, "log": bench.log_tail(platform, n, 12)} for n, c in exited.items()}
    if waited["stalled"]:
        result["logs"] = {s: bench.log_tail(platform, s, 8) for s in platform.stack.procs}
    return result


async def service_metrics(platform: Platform) -> dict[str, dict[str, float]]:
    """From each service's own /metrics (whole run): mean handler time per event type, handler retries
    by kind, and dead-lettered events."""
    import re

    import httpx

    line = re.compile(r"^(agentbus_handler_seconds_sum|agentbus_handler_seconds_count|"
                      r"agentbus_handler_retries_total|agentbus_dead_lettered_total)\{([^}]*)\} (\S+)$", re.MULTILINE)
    out: dict[str, dict[str, float]] = {"handler_ms_mean": {}, "retries": {}, "dead_lettered": {}}
    async with httpx.AsyncClient(timeout=5) as c:
        for name, port in platform.stack.ports.services.items():
            try:
                text = (await c.get(f"http://127.0.0.1:{port}/metrics")).text
            except httpx.HTTPError:
                continue
            sums: dict[str, dict[str, float]] = {}
            for metric, labels, val in line.findall(text):
                lab = dict(re.findall(r'(\w+)="([^"]*)"', labels))
                typ = lab.get("type", "?")
                if metric.startswith("agentbus_handler_seconds"):
                    sums.setdefault(typ, {})[metric.rsplit("_", 1)[1]] = float(val)
                elif float(val) > 0 and metric == "agentbus_handler_retries_total":
                    out["retries"][f"{name}/{typ}/{lab.get('kind', '?')}"] = float(val)
                elif float(val) > 0:
                    out["dead_lettered"][f"{name}/{typ}"] = float(val)
            for typ, v in sums.items():
                if v.get("count"):
                    out["handler_ms_mean"][f"{name}/{typ}"] = round(1000 * v["sum"] / v["count"], 2)
    return out


async def with_fakes(bench: Bench, opts: Options, delay_s: float = 0.0) -> tuple[Peer, Peer, Peer]:
    sink = await bench.start_peer("sink", "sink", *[a for t in TENANTS for a in ("--secret", f"{t}={secret_for(t)}")])
    llm = await bench.start_peer("fake-llm", "llm", "--delay-s", str(delay_s))
    emb = await bench.start_peer("fake-embeddings", "embeddings", "--dim", str(opts.dim))
    return sink, llm, emb


async def pipeline(bench: Bench, opts: Options, mode: str, semantic: bool = True,
                   traced: bool = False, tools: bool = False) -> dict[str, Any]:
    """The pipeline scenario; ``traced`` points every service at an OTLP endpoint (a peer standing in for
    Jaeger), so every span is recorded and exported, as in a deployment with tracing on; ``tools`` makes the
    model call one instant tool (the built-in ``now``) before it answers: two model calls, one tool step
    recorded, one tool.called event per message."""
    sink, llm, emb = await with_fakes(bench, opts)
    env = {"AGENTBUS_EMBEDDINGS_URL": emb.url + "/v1", "AGENTBUS_EMBEDDINGS_DIM": str(opts.dim)}
    traces = None
    if traced:
        traces = await bench.start_peer("traces", "traces", record=False)
        env["AGENTBUS_OTLP_ENDPOINT"] = traces.url
    platform = await bench.start_platform(pipeline_config(sink.url, llm.url + "/v1", semantic, tools), env)
    try:
        load = Load(opts.messages, opts.conversations, mode, opts.rate, opts.concurrency)
        name = (f"pipeline-{mode}" + ("" if semantic else "-nosemantic") + ("-traced" if traced else "")
                + ("-tools" if tools else ""))
        r = await measured(bench, name, platform, [(t, secret_for(t)) for t in TENANTS], load, opts, llm, emb)
        if traces is not None:
            await asyncio.sleep(1.5)  # the services export their spans in the background, once a second
            r["spans_exported"] = (await traces.get("/stats"))["spans"]
        return r
    finally:
        await bench.stop_platform(platform)
        await bench.stop_peers()


async def slow_llm(bench: Bench, opts: Options, semantic: bool = False) -> dict[str, Any]:
    """One message in each of N conversations at once, the LLM taking ``slow_delay_s`` per call.

    Semantic memory is off by default here: the embedded vector store serialises memory's work, which
    would throttle the input of the reasoner and hide the number this scenario is about.
    """
    sink, llm, emb = await with_fakes(bench, opts, opts.slow_delay_s)
    platform = await bench.start_platform(
        pipeline_config(sink.url, llm.url + "/v1", semantic),
        {"AGENTBUS_EMBEDDINGS_URL": emb.url + "/v1", "AGENTBUS_EMBEDDINGS_DIM": str(opts.dim),
         "AGENTBUS_MAX_IN_FLIGHT": "4096", "AGENTBUS_LLM_MAX_CONNECTIONS": "4096"},
    )
    try:
        n = opts.slow_conversations
        load = Load(n, n, "closed", opts.rate, min(n, 256))
        name = "slow-llm" + ("" if semantic else "-nosemantic")
        r = await measured(bench, name, platform, [(t, secret_for(t)) for t in TENANTS], load, opts, llm, emb)
        r["llm_delay_s"] = opts.slow_delay_s
        return r
    finally:
        await bench.stop_platform(platform)
        await bench.stop_peers()


def embedded_config(sink_url: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """infra/agentbus.yaml (what ``make up`` runs) with the webhook channels pushing to the sink."""
    from agentbus.config import load_config

    path = ROOT / "infra" / "agentbus.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    cfg = load_config(path)
    channels = []
    for ch in raw["channels"]:
        if ch["type"] == "webhook":
            ch["push_url"] = f"{sink_url}/push/{ch['id']}"
            channels.append((ch["id"], cfg.channel(ch["id"]).secret.value()))  # type: ignore[union-attr]
    return raw, channels


async def embedded(bench: Bench, opts: Options) -> dict[str, Any]:
    _, channels = embedded_config("http://127.0.0.1:1")
    sink = await bench.start_peer("sink", "sink", *[a for cid, s in channels for a in ("--secret", f"{cid}={s}")])
    config, _ = embedded_config(sink.url)
    platform = await bench.start_platform(config)
    try:
        load = Load(opts.embedded_messages, opts.embedded_conversations, "closed", opts.rate, opts.concurrency)
        return await measured(bench, "embedded-default", platform, channels, load, opts)
    finally:
        await bench.stop_platform(platform)
        await bench.stop_peers()


async def baseline_http(bench: Bench, opts: Options) -> list[dict[str, Any]]:
    bare = await bench.start_peer("bare-http", "bare", record=False)
    out = []
    try:
        url = bare.url + "/v1/webhooks"
        channels = [(t, secret_for(t)) for t in TENANTS]
        for mode, count in (("open", max(1, min(opts.messages, int(10 * opts.rate)))), ("closed", opts.messages)):
            await drive(bench, url, channels, new_run("warm"), Load(opts.warmup or 10, 10, "closed", 0, 16))
            run = new_run(f"bare{mode}")
            cpu0, m0 = bench.sampler.cpu(), machine_busy()
            summary = await drive(bench, url, channels, run, Load(count, opts.conversations, mode, opts.rate,
                                                                     opts.concurrency))
            cpu1, m1 = bench.sampler.cpu(), machine_busy()
            r = analyse(run, Path(summary["records"]), Path("/nonexistent"))
            for k in ("delivered", "missing", "missing_examples", "duplicate_pushes", "msg_per_s", "e2e_ms"):
                r.pop(k, None)
            r.update(scenario=f"baseline-http-{mode}", load_errors=summary["errors"],
                     load={"count": count, "mode": mode, "rate": opts.rate, "concurrency": opts.concurrency})
            r["processes"] = process_usage(bench, cpu0, cpu1, r["accepted"],
                                           {"loadgen": (summary["cpu_s"], summary["peak_rss_bytes"])})
            r["processes"] = {k: v for k, v in r["processes"].items() if k in ("bare-http", "loadgen")}
            r["machine"] = other_load(m0, m1, r["processes"])
            out.append(r)
    finally:
        await bench.stop_peers()
    return out


async def baseline_broker(bench: Bench, opts: Options) -> dict[str, Any]:
    spec = {"bootstrap": bench.infra_env["AGENTBUS_KAFKA_BOOTSTRAP_SERVERS"], "partitions": 6,
            "paced_count": max(1, min(opts.messages, int(10 * opts.rate))), "rate": opts.rate,
            "max_count": opts.messages, "window": 1000}
    path = bench.home / "records" / "broker-baseline.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(spec))
    cpu0, m0 = bench.sampler.cpu(), machine_busy()
    with open(bench.home / "logs" / "broker-baseline.log", "ab") as err:  # noqa: ASYNC230 - handed to the child
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.brokerbase", str(path),
                                                    stdout=asyncio.subprocess.PIPE, stderr=err, env=child_env())
        stdout, _ = await proc.communicate()
    cpu1, m1 = bench.sampler.cpu(), machine_busy()
    lines = stdout.decode().strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError("broker baseline failed; see logs/broker-baseline.log")
    r: dict[str, Any] = orjson.loads(lines[-1])
    total = r["paced"]["received"] + r["max"]["received"]
    r["scenario"] = "baseline-broker"
    r["processes"] = {"broker": {"group": "infra", "cpu_s": round(cpu1["broker"] - cpu0["broker"], 3),
                                 "cpu_s_per_1k": round(1000 * (cpu1["broker"] - cpu0["broker"]) / max(total, 1), 3)},
                      "client": {"group": "peer", "cpu_s": round(r["cpu_s"], 3),
                                 "cpu_s_per_1k": round(1000 * r["cpu_s"] / max(total, 1), 3)}}
    r["machine"] = other_load(m0, m1, r["processes"])
    return r
