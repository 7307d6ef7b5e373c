"""The table printed at the end of a run, with the targets next to the measured values."""

from __future__ import annotations

from typing import Any

TARGETS = {
    "throughput": 3000.0,  # pipeline msg/s sustained
    "p99_ms": 50.0,  # platform p99 at 1,000 msg/s
    "in_flight": 2000,  # slow LLM conversations in flight
    "services_rss_mb": 600.0,  # total RSS of the five services after the soak
}
SERVICES = ("ingress", "memory", "reasoner", "scheduler", "egress")


def _f(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _trio(d: dict[str, Any] | None) -> str:
    if not d or d.get("p50") is None:
        return "-"
    return "/".join(_f(d[k], 0 if d[k] >= 100 else 1) for k in ("p50", "p95", "p99"))


def label(r: dict[str, Any]) -> str:
    """The scenario's name, marked when it ran on Apache Kafka (``make bench KAFKA=1``)."""
    return r["scenario"] + (" @kafka" if r.get("broker") == "kafka" else "")


def _label(r: dict[str, Any]) -> str:
    load = r.get("load") or {}
    if load.get("mode") == "open":
        return f"open {_f(load.get('rate'), 0)}/s"
    if load.get("mode") == "closed":
        return f"closed x{load.get('concurrency')}"
    return ""


def scenario_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    rows = [["scenario", "msgs", "conv", "load", "msg/s", "accept/s", "2xx ms p50/p95/p99",
             "e2e ms p50/p95/p99", "platform ms p50/p95/p99", "lost", "dup", "err", "other cores", "host ms"]]
    for r in results:
        name = r["scenario"]
        other = _f((r.get("machine") or {}).get("other_cores"), 2)
        hm = r.get("host_ms") or {}
        host = f"{_f(hm.get('before'))}/{_f(hm.get('after'))}" if hm else "-"
        if name == "baseline-broker":
            p, m = r["paced"], r["max"]
            rows.append([f"broker alone ({r['message_bytes']} B, acks=all)", _f(p["count"] + m["count"]), "-",
                         f"paced {_f(p['target_rate'], 0)}/s", _f(m["msg_per_s"]), "-",
                         f"ack {_f(p['ack_p50_ms'])}/-/{_f(p['ack_p99_ms'])}",
                         f"{_f(p['e2e_p50_ms'])}/{_f(p['e2e_p95_ms'])}/{_f(p['e2e_p99_ms'])}", "-",
                         _f(p["count"] - p["received"] + m["count"] - m["received"]), "-", "-", other, host])
            continue
        if name.startswith("baseline-http"):
            rows.append([f"bare HTTP 202 ({_label(r)})", _f(r["sent"]), "-", _label(r), _f(r["accept_per_s"]),
                         _f(r["accept_per_s"]), _trio(r["ingress_ms"]), "-", "-", "-", "-",
                         _f(r["http_errors"]), other, host])
            continue
        extra = ""
        if "llm_max_in_flight" in r and r.get("llm_delay_s"):
            extra = f" [max LLM in flight {r['llm_max_in_flight']}]"
        if "spans_exported" in r:
            extra = f" [{r['spans_exported'] / max(r['sent'], 1):.1f} spans/msg exported]"
        stalled = " STALLED" if (r.get("wait") or {}).get("stalled") else ""
        rows.append([label(r) + extra + stalled, _f(r["sent"]), _f((r.get("load") or {}).get("conversations")),
                     _label(r), _f(r["msg_per_s"]), _f(r["accept_per_s"]), _trio(r["ingress_ms"]),
                     _trio(r["e2e_ms"]), _trio(r.get("platform_ms")), _f(r["missing"]),
                     _f(r["duplicate_pushes"]), _f(r["http_errors"]), other, host])
    return rows


def services_total(r: dict[str, Any], key: str) -> float | None:
    """The sum of ``key`` (CPU per 1k, peak or final RSS) over the five services in a scenario's result;
    None when it measured none of them."""
    procs = r.get("processes") or {}
    ps = [procs[s] for s in SERVICES if s in procs]
    return float(sum(p.get(key) or 0 for p in ps)) if ps else None


def process_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    runs = [r for r in results if r.get("processes") and r["scenario"] != "baseline-broker"
            and not r["scenario"].startswith("baseline-http")]
    names: list[str] = []
    for r in runs:
        for n in r["processes"]:
            if n not in names:
                names.append(n)
    order = [n for n in SERVICES if n in names] + [n for n in names if n not in SERVICES]
    rows = [["CPU s / 1k msgs (peak/final RSS MB)"] + [label(r) for r in runs]]
    for n in order:
        row = [n]
        for r in runs:
            p = r["processes"].get(n)
            row.append("-" if p is None else
                       f"{_f(p['cpu_s_per_1k'], 2)} ({_f(p['peak_rss_mb'], 0)}/{_f(p['final_rss_mb'], 0)})")
        rows.append(row)
    row = ["five services"]
    for r in runs:
        row.append(f"{_f(services_total(r, 'cpu_s_per_1k'), 2)} ({_f(services_total(r, 'peak_rss_mb'), 0)}/"
                   f"{_f(services_total(r, 'final_rss_mb'), 0)})")
    rows.append(row)
    return rows


def _find(results: list[dict[str, Any]], name: str, broker: str = "embedded") -> dict[str, Any] | None:
    return next((r for r in results if r["scenario"] == name and r.get("broker", "embedded") == broker), None)


def broker_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    """Each scenario that ran on both brokers, the embedded one beside Apache Kafka (three nodes, replication 3,
    min.insync.replicas 2, idempotent producers)."""
    rows = [["scenario: embedded | kafka", "msg/s", "accept/s", "e2e ms p50/p95/p99", "platform ms p50/p95/p99",
             "lost", "dup", "five services CPU s / 1k"]]
    for k in (r for r in results if r.get("broker") == "kafka"):
        e = _find(results, k["scenario"])
        if e is None:
            continue

        def pair(f: Any, e: dict[str, Any] = e, k: dict[str, Any] = k) -> str:
            return f"{f(e)} | {f(k)}"

        rows.append([k["scenario"], pair(lambda r: _f(r["msg_per_s"])), pair(lambda r: _f(r["accept_per_s"])),
                     pair(lambda r: _trio(r["e2e_ms"])), pair(lambda r: _trio(r.get("platform_ms"))),
                     pair(lambda r: _f(r["missing"])), pair(lambda r: _f(r["duplicate_pushes"])),
                     pair(lambda r: _f(services_total(r, "cpu_s_per_1k"), 2))])
    return rows


def target_rows(results: list[dict[str, Any]], soak: dict[str, Any] | None) -> list[list[str]]:
    rows = [["target", "goal", "measured", "met", "where"]]

    def add(label: str, goal: str, value: float | None, ok: bool | None, where: str) -> None:
        rows.append([label, goal, _f(value), "-" if ok is None else ("yes" if ok else "NO"), where])

    closed = _find(results, "pipeline-closed")
    v = closed["msg_per_s"] if closed else None
    add("pipeline msg/s sustained", f">= {TARGETS['throughput']:,.0f}", v,
        None if v is None else v >= TARGETS["throughput"], "pipeline-closed")
    op = _find(results, "pipeline-open")
    v = (op.get("platform_ms") or {}).get("p99") if op else None
    rate = (op or {}).get("load", {}).get("rate")
    add(f"platform p99 ms at {_f(rate, 0)} msg/s", f"<= {TARGETS['p99_ms']:.0f}", v,
        None if v is None else v <= TARGETS["p99_ms"],
        f"pipeline-open (achieved {_f((op or {}).get('accept_per_s'))}/s)")
    sl = _find(results, "slow-llm") or _find(results, "slow-llm-nosemantic")
    v = sl.get("llm_max_in_flight") if sl else None
    add("slow LLM calls in flight", f">= {TARGETS['in_flight']:,}", v,
        None if v is None else v >= TARGETS["in_flight"], "slow-llm")
    if soak is not None:
        v = soak.get("services_final_rss_mb")
        add("five services' RSS MB after soak", f"<= {TARGETS['services_rss_mb']:.0f}", v,
            None if v is None else v <= TARGETS["services_rss_mb"], f"soak ({_f(soak.get('delivered'))} msgs)")
    else:
        ref = closed or op
        v = None
        total = services_total(ref, "final_rss_mb") if ref else None
        if total is not None:
            v = round(total, 1)
        rows.append(["five services' RSS MB after soak", f"<= {TARGETS['services_rss_mb']:.0f}",
                     f"{_f(v)} (no soak)", "-", "soak not run (make bench SOAK=1); value after pipeline-closed"])
    return rows


def ratio_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    rows = [["overhead", "platform", "baseline", "ratio"]]
    closed, bare = _find(results, "pipeline-closed"), _find(results, "baseline-http-closed")
    broker, op = _find(results, "baseline-broker"), _find(results, "pipeline-open")
    bare_open = _find(results, "baseline-http-open")

    def add(label: str, a: float | None, b: float | None) -> None:
        rows.append([label, _f(a), _f(b), "-" if not a or not b else f"{a / b:,.2f}x"])

    if closed and bare:
        add("msg/s, pipeline closed loop vs bare HTTP", closed["msg_per_s"], bare["accept_per_s"])
        add("accept/s at ingress vs bare HTTP (same senders)", closed["accept_per_s"], bare["accept_per_s"])
        add("2xx p50 ms at ingress vs bare HTTP (closed)", closed["ingress_ms"]["p50"], bare["ingress_ms"]["p50"])
    if op and bare_open:
        add("2xx p50 ms at ingress vs bare HTTP (open)", op["ingress_ms"]["p50"], bare_open["ingress_ms"]["p50"])
    if broker and closed:
        add("msg/s, pipeline closed loop vs broker alone", closed["msg_per_s"], broker["max"]["msg_per_s"])
    if broker and op:
        add("e2e p50 ms (4 topics) vs broker produce->consume", (op["e2e_ms"] or {}).get("p50"),
            broker["paced"]["e2e_p50_ms"])
    return rows


def render(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for k, r in enumerate(rows):
        cells = enumerate(zip(r, widths, strict=True))
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in cells))
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def problems(results: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in results:
        name = label(r)
        if r.get("missing"):
            examples = ", ".join(r["missing_examples"])
            out.append(f"{name}: {r['missing']} accepted messages never pushed (e.g. {examples})")
        if r.get("duplicate_pushes"):
            out.append(f"{name}: {r['duplicate_pushes']} duplicate pushes")
        if r.get("messages_with_repeated_llm_calls"):
            out.append(f"{name}: {r['messages_with_repeated_llm_calls']} messages cost more than one LLM call "
                       f"({r['llm_calls']} calls for {r['accepted']} messages)")
        for svc, info in (r.get("services_exited") or {}).items():
            last = (info.get("log") or "").strip().splitlines()[-1:] or [""]
            out.append(f"{name}: {svc} exited during the run (code {info.get('code')}): {last[0][:200]}")
        if r.get("retries"):
            out.append(f"{name}: handler retries " + ", ".join(f"{k} {v:,.0f}" for k, v in r["retries"].items()))
        if r.get("dead_lettered"):
            out.append(f"{name}: dead-lettered " + ", ".join(f"{k} {v:,.0f}" for k, v in r["dead_lettered"].items()))
        if r.get("http_errors"):
            out.append(f"{name}: {r['http_errors']} webhooks not accepted: {r.get('load_errors')}")
        if (r.get("warmup") or {}).get("stalled"):
            out.append(f"{name}: the warm-up's {r['warmup'].get('pushes')} pushes were short of its messages (stall)")
        if (r.get("wait") or {}).get("stalled"):
            out.append(f"{name}: no push arrived for {r['wait'].get('idle_s', 0):.0f}s before all were pushed (stall)")
        if (r.get("sink") or {}).get("rejected"):
            out.append(f"{name}: the sink rejected {r['sink']['rejected']} pushes (signature or channel)")
    return out


def table(meta: dict[str, Any], results: list[dict[str, Any]], soak: dict[str, Any] | None = None) -> str:
    parts = [
        (f"agentbus bench  {meta['started']}  scale {meta['scale']}  {meta['cores']} cores  "
        f"runtime {meta['runtime_s'] / 60:.1f} min"),
        "",
    ]
    if results:
        parts += [render(scenario_rows(results)), "", render(process_rows(results)), ""]
    parts += [render(target_rows(results, soak)), ""]
    if results:
        parts += [render(ratio_rows(results)), ""]
    kafka = broker_rows(results)
    if len(kafka) > 1:
        parts += ["the same scenarios on the embedded broker | on Apache Kafka (3 nodes, replication 3, "
                  "min.insync.replicas 2, idempotent producers)", render(kafka), ""]
    if soak is not None:
        parts += ["", soak_text(soak)]
    for r in results:
        if r.get("handler_ms_mean"):
            parts.append(f"handler mean ms, {label(r)}: "
                         + ", ".join(f"{k} {v:,.1f}" for k, v in r["handler_ms_mean"].items()))
    found = problems(results)
    parts += ["", "problems: " + ("none seen" if not found else "")] + [f"  - {p}" for p in found]
    parts += ["", ("msg/s: pushes per second from the first send to the last push; accept/s: webhooks answered 2xx "
              "per second; e2e: 2xx to push arrival; platform: e2e minus time spent in the fake LLM and embeddings; "
              "other cores: CPU used by programs outside this run while it ran; host ms: CPU ms this host took for "
              "a fixed piece of Python work before/after the scenario (runs compare only when these agree).")]
    return "\n".join(parts)


def soak_text(s: dict[str, Any]) -> str:
    lines = [(f"soak: {_f(s['delivered'])}/{_f(s['accepted'])} messages pushed at {_f(s['target_rate'], 0)}/s target "
             f"({_f(s['accept_per_s'])}/s achieved) over {s['duration_s'] / 60:.1f} min; "
             f"e2e p50/p95/p99 {_trio(s['e2e_ms'])} ms; "
             f"{'all pushed' if s.get('drained') else str(s['missing']) + ' not pushed by the end (backlog)'}, "
             f"dup {s['duplicate_pushes']}, errors {s['http_errors']}")]
    slopes = s.get("rss_slope_mb_per_h") or {}
    lines.append("RSS slope over the second half (MB/hour): "
                 + ", ".join(f"{k} {v:+.1f}" for k, v in slopes.items()))
    trend = s.get("cpu_ms_per_msg") or {}
    if trend:
        lines.append("CPU ms per message, first fifth -> last fifth: " + ", ".join(
            f"{k} {v['first_fifth']:.2f} -> {v['last_fifth']:.2f}" for k, v in trend.items()))
    lines.append("final RSS MB: " + ", ".join(f"{k} {v:.0f}" for k, v in (s.get("final_rss_mb") or {}).items() if v))
    tables = s.get("tables") or {}
    if tables:
        lines.append("tables retention prunes (rows, then rows and KB per 1k messages): " + ", ".join(
            f"{k} {v['rows']:,} (+{v['rows_per_1k_msgs']:,.0f}, +{v['kb_per_1k_msgs']:,.0f} KB)"
            for k, v in tables.items()))
    lines.append("plots: " + ", ".join(s.get("plots", [])))
    return "\n".join(lines)
