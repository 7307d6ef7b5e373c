"""``python -m bench``: run the scenarios (or the soak) and print one table; JSON goes to bench/results/."""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import report
from bench.platform import Bench
from bench.scenarios import Options

SCENARIOS = ("baselines", "pipeline", "slow-llm", "embedded")
RESULTS = Path(__file__).resolve().parent / "results"


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--scale", type=float, default=float(os.environ.get("BENCH_SCALE", "1") or 1),
                    help="multiplies the message counts of the issue (20,000 pipeline, 2,000 embedded)")
    ap.add_argument("--messages", type=int, help="pipeline messages (default 20,000 x scale)")
    ap.add_argument("--conversations", type=int, help="pipeline conversations (default 2,000 x scale)")
    ap.add_argument("--rate", type=float, default=1000.0, help="open-loop target rate, msg/s")
    ap.add_argument("--concurrency", type=int, default=64, help="closed-loop concurrent senders")
    ap.add_argument("--slow-conversations", type=int, default=2000)
    ap.add_argument("--slow-delay-s", type=float, default=2.0)
    ap.add_argument("--slow-semantic", action="store_true",
                    help="keep semantic memory on in the slow-LLM scenario (off by default, see README)")
    ap.add_argument("--embedded-messages", type=int, help="default 2,000 x scale")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated subset of {SCENARIOS}")
    ap.add_argument("--no-nosemantic", action="store_true", help="skip the pipeline run without semantic memory")
    ap.add_argument("--no-traced", action="store_true",
                    help="skip the pipeline run with every span recorded and exported over OTLP")
    ap.add_argument("--stall-s", type=float, default=60.0, help="give up waiting after this long without a push")
    ap.add_argument("--no-tools", action="store_true", help="skip the pipeline run with one tool call per message")
    ap.add_argument("--soak", action="store_true", help="run the soak instead of the scenarios")
    ap.add_argument("--soak-messages", type=int, default=1_000_000)
    ap.add_argument("--soak-rate", type=float, default=20.0)
    ap.add_argument("--soak-conversations", type=int, default=2000)
    ap.add_argument("--soak-max-s", type=float, default=24 * 3600.0, help="stop sending after this long")
    ap.add_argument("--service-env", action="append", default=[], metavar="AGENTBUS_X=VALUE",
                    help="extra setting for every service process (repeatable), for what-if runs")
    ap.add_argument("--kafka", metavar="LIBS",
                    help="Apache Kafka's jars (what tools/kafka.sh prints): run the pipeline scenarios a second time "
                         "on a three-node Kafka cluster started from them, and report both brokers")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder (data, logs, records)")
    return ap.parse_args(argv)


def options(a: argparse.Namespace) -> Options:
    messages = a.messages or max(1, round(20000 * a.scale))
    return Options(
        messages=messages,
        conversations=a.conversations or max(1, min(messages, round(2000 * a.scale))),
        rate=a.rate, concurrency=a.concurrency, slow_conversations=a.slow_conversations,
        slow_delay_s=a.slow_delay_s, embedded_messages=a.embedded_messages or max(1, round(2000 * a.scale)),
        embedded_conversations=max(1, round((a.embedded_messages or round(2000 * a.scale)) / 10)),
        stall_s=a.stall_s,
    )


async def run_scenarios(bench: Bench, a: argparse.Namespace, opts: Options) -> list[dict[str, Any]]:
    from bench import scenarios as sc

    wanted = {s.strip() for s in a.scenarios.split(",") if s.strip()}
    unknown = wanted - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")
    results: list[dict[str, Any]] = []
    host = [sc.host_speed()]  # the host's speed between scenarios, when the platform is idle

    def step(r: dict[str, Any]) -> None:
        host.append(sc.host_speed())
        r["host_ms"] = {"before": host[-2], "after": host[-1]}
        results.append(r)
        print(f"bench: {report.label(r)} done: {r.get('msg_per_s') or r.get('accept_per_s') or ''} msg/s",
              file=sys.stderr, flush=True)

    if "baselines" in wanted:
        step(await sc.baseline_broker(bench, opts))
        for r in await sc.baseline_http(bench, opts):
            step(r)
    if "pipeline" in wanted:
        await run_pipelines(bench, a, opts, step)
    if "slow-llm" in wanted:
        step(await sc.slow_llm(bench, opts, semantic=a.slow_semantic))
    if "embedded" in wanted:
        step(await sc.embedded(bench, opts))
    if "pipeline" in wanted and a.kafka:
        await on_kafka(bench, a, opts, step)
    return results


async def run_pipelines(bench: Bench, a: argparse.Namespace, opts: Options,
                        step: Callable[[dict[str, Any]], None]) -> None:
    from bench import scenarios as sc

    step(await sc.pipeline(bench, opts, "open"))
    step(await sc.pipeline(bench, opts, "closed"))
    if not a.no_nosemantic:
        step(await sc.pipeline(bench, opts, "closed", semantic=False))
    if not a.no_traced:
        step(await sc.pipeline(bench, opts, "closed", traced=True))
    if not a.no_tools:
        step(await sc.pipeline(bench, opts, "closed", tools=True))


async def on_kafka(bench: Bench, a: argparse.Namespace, opts: Options,
                   step: Callable[[dict[str, Any]], None]) -> None:
    """The pipeline scenarios again, the services on a three-node Apache Kafka cluster (KRaft, replication 3,
    min.insync.replicas 2, idempotent producers: what ``make test-kafka`` runs on); PostgreSQL, the peers and
    everything else as on the embedded broker. Each result says ``"broker": "kafka"``."""
    from agentbus.stack.kafka_cluster import PLATFORM_ENV, KafkaCluster, kafka_libs

    libs = kafka_libs(a.kafka)
    assert libs is not None
    cluster = KafkaCluster(libs, bench.home / "kafka")
    print(f"bench: starting a {cluster.size}-node Kafka cluster from {libs}", file=sys.stderr, flush=True)
    try:
        await cluster.start()
        for node in cluster.nodes.values():
            assert node.proc is not None and node.proc.process is not None
            bench.sampler.add(f"kafka-{node.node_id}", node.proc.process.pid, group="infra")
        # Kafka's log is durable: no archive of it in PostgreSQL (which the embedded broker's in-memory log has)
        bench.broker_env = {"AGENTBUS_KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap, "AGENTBUS_LOG_ARCHIVE": "false",
                            **PLATFORM_ENV}

        def tagged(r: dict[str, Any]) -> None:
            r["broker"] = "kafka"
            step(r)

        await run_pipelines(bench, a, opts, tagged)
    finally:
        bench.broker_env = {}
        for node in cluster.nodes.values():
            bench.sampler.remove(f"kafka-{node.node_id}")
        await cluster.stop()


async def main_async(a: argparse.Namespace) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    started = datetime.now(UTC)
    t0 = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="agentbus-bench-"))
    bench = Bench(home, service_env=dict(kv.split("=", 1) for kv in a.service_env))
    opts = options(a)
    results: list[dict[str, Any]] = []
    soak: dict[str, Any] | None = None
    print(f"bench: scratch folder {home}; {opts}", file=sys.stderr, flush=True)
    # SIGTERM stops the run as Ctrl-C does: the finally below stops every process the bench started
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    try:
        await bench.start_infra()
        bench.sampler.start()
        if a.soak:
            from bench.soak import run_soak

            soak = await run_soak(bench, opts, a, a.out_dir, started)
        else:
            results = await run_scenarios(bench, a, opts)
    finally:
        await bench.sampler.stop()
        await bench.stop_peers()
        await bench.stop_infra()
        if not a.keep:
            shutil.rmtree(home, ignore_errors=True)
    meta = {"started": started.isoformat(timespec="seconds"), "scale": a.scale, "cores": os.cpu_count(),
            "runtime_s": round(time.monotonic() - t0, 1), "options": opts.__dict__, "soak": a.soak,
            "service_env": bench.service_env, "kafka": bool(a.kafka),
            "python": sys.version.split()[0]}
    a.out_dir.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    text = report.table(meta, results, soak)
    (a.out_dir / f"{stamp}.json").write_bytes(
        orjson.dumps({"meta": meta, "results": results, "soak": soak}, option=orjson.OPT_INDENT_2))
    (a.out_dir / f"{stamp}.txt").write_text(text + "\n", encoding="utf-8")
    print(text)
    print(f"\nresults: {a.out_dir / (stamp + '.json')}")
    return 0


def main(argv: list[str] | None = None) -> None:
    try:
        code = asyncio.run(main_async(parse(argv)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("bench: stopped; every process it started was stopped", file=sys.stderr)
        code = 130
    raise SystemExit(code)


if __name__ == "__main__":
    main()
