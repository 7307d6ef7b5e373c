"""The benchmark harness, tiny: 200 messages through the pipeline scenario, and a well-formed result.

This checks that the measurement is right (every message counted, latencies and usage present), never
how fast the platform is.
"""

from __future__ import annotations

import pytest

from bench import report
from bench.platform import Bench
from bench.scenarios import Options, pipeline
from tests.support.platform import Infra

pytestmark = [pytest.mark.integration, pytest.mark.broker, pytest.mark.timeout(150)]

SERVICES = ("ingress", "memory", "reasoner", "scheduler", "egress")


async def test_pipeline_scenario_counts_every_message_and_reports_latency(infra: Infra, tmp_path) -> None:
    bench = Bench(tmp_path)
    for sub in ("logs", "records"):
        (tmp_path / sub).mkdir()
    bench.infra_env = dict(infra.env)
    # the embedded broker is one of the stack's processes; Apache Kafka's nodes (make test-kafka) are the cluster's
    kafka_nodes = [n.proc for n in infra.kafka.nodes.values() if n.proc is not None] if infra.kafka else []
    brokers = [p.name for p in kafka_nodes] or ["broker"]
    for p in [*infra.stack.infra, *kafka_nodes]:
        assert p.process is not None
        bench.sampler.add(p.name, p.process.pid, tree=p.name == "postgres", group="infra")
    opts = Options(messages=200, conversations=20, concurrency=16, warmup=5, stall_s=30, limit_s=100)
    try:
        r = await pipeline(bench, opts, "closed")
    finally:
        await bench.stop_peers()

    assert (r["sent"], r["accepted"], r["delivered"]) == (200, 200, 200)
    assert r["missing"] == r["duplicate_pushes"] == r["http_errors"] == r["pushes_without_2xx"] == 0
    assert not r["wait"]["stalled"] and not r["warmup"]["stalled"] and r["sink"]["rejected"] == 0
    assert "services_exited" not in r
    assert r["llm_calls"] == 200 and r["messages_with_repeated_llm_calls"] == 0
    assert r["llm_requests"] == 205  # the measured messages and the warm-up's, one call each
    for dist in (r["ingress_ms"], r["e2e_ms"], r["platform_ms"]):
        assert 0 < dist["p50"] <= dist["p95"] <= dist["p99"] <= dist["max"]
    assert r["platform_ms"]["p50"] <= r["e2e_ms"]["p50"]
    assert r["fake_llm_ms_mean"] > 0 and r["fake_embeddings_ms_mean"] > 0
    assert r["msg_per_s"] > 0 and r["accept_per_s"] > 0
    for name in (*SERVICES, *brokers, "postgres", "sink", "fake-llm", "fake-embeddings", "loadgen"):
        usage = r["processes"][name]
        assert usage["cpu_s"] >= 0 and usage["peak_rss_mb"] > 0, name
    for name in SERVICES:
        assert r["processes"][name]["cpu_s"] > 0 and r["processes"][name]["final_rss_mb"] > 0
    assert set(r["machine"]) == {"cores", "busy_cores", "run_cores", "other_cores"}

    meta = {"started": "now", "scale": 0.01, "cores": 2, "runtime_s": 1.0}
    text = report.table(meta, [r])
    assert "pipeline-closed" in text and "ingress" in text and "problems: none seen" in text
    row = next(line for line in text.splitlines() if line.startswith("pipeline-closed"))
    assert row.split()[-1] == "-"  # no host figures measured around this scenario
    r["host_ms"] = {"before": 41.5, "after": 47.3}  # what run_scenarios records around each scenario
    row = next(line for line in report.table(meta, [r]).splitlines() if line.startswith("pipeline-closed"))
    assert row.split()[-1] == "41.5/47.3"
