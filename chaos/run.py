"""One chaos run against running infrastructure: fakes up, platform up, load and faults together, drain, count."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agentbus.cli.dlq import read_dead_letters, read_topic
from agentbus.events import parse_event
from agentbus.settings import Settings
from agentbus.topics import topic_for
from chaos import longconn
from chaos.fakes import ChaosEffects, ChaosLLM, ChaosSink
from chaos.faults import Fault, Injector, run_faults
from chaos.kafka_faults import kafka_plan
from chaos.load import Load, plan
from chaos.report import Result, compute, first_deliveries, recovery_after
from tests.fakes.telegram import FakeTelegram
from tests.support.platform import Infra, base_config, run_platform, secret_for

CHANNELS = ["acme", "globex"]


def full_plan(i: Injector) -> list[Fault]:
    return [
        *(i.kill_service(s) for s in ("ingress", "memory", "reasoner", "scheduler", "egress")),
        i.pause_broker(10),
        i.restart_postgres(down_s=5),
        i.llm_window("fail", 15),
        i.llm_window("timeout", 15),
        i.throttle_window(15),
    ]


def slice_plan(i: Injector) -> list[Fault]:
    # the reasoner, not egress: a SIGKILL of egress between a push and its ledger update repeats that push
    # (same webhook-id; pinned by tests/chaos/test_interrupted_push.py), which would make the slice's
    # "no duplicated push" check depend on timing. The full plan kills every service and counts it.
    # ingress too: it holds the Telegram channel's long connection, and a webhook sender retries with the
    # same webhook-id, so its SIGKILL is counted exactly. The windows come first: they need traffic while they
    # last, and a busy machine's slow recoveries from the kills must not push them past the end of the load.
    return [i.throttle_window(5), i.llm_window("fail", 6), i.kill_service("ingress"), i.kill_service("reasoner")]


PLANS: dict[str, tuple[Callable[[Injector], list[Fault]], float]] = {
    # plan name → (faults, seconds over which the load is spread: long enough to cover the faults)
    "full": (full_plan, 200.0),
    "slice": (slice_plan, 60.0),
    "kafka": (kafka_plan, 160.0),  # on Apache Kafka's three nodes (chaos.kafka_faults)
}


@dataclass
class Options:
    messages: int = 3000
    conversations: int = 300
    plan: str = "full"
    duration_s: float | None = None
    first_fault_s: float = 8.0
    gap_s: float = 4.0
    recovery_wait_s: float = 60.0
    drain_timeout_s: float = 900.0
    settle_s: float = 5.0
    partitions: int = 3
    llm_timeout_s: float = 2.0
    embeddings: bool = False  # semantic memory: CPU-bound on 2 cores, and beside the point of this run
    # a Telegram channel in mode: stream beside the webhook channels (0: none)
    longconn_messages: int = 300
    longconn_conversations: int = 30
    lease_ttl_s: float = 3.0  # how soon a restarted ingress may take the connection over


def chaos_config(sink_url: str, llm_url: str, llm_timeout_s: float, effects_url: str | None = None) -> dict[str, Any]:
    config = base_config(sink_url, llm_url, tenants=tuple(CHANNELS))
    for m in config["models"]:
        m["timeout_s"] = llm_timeout_s
    if effects_url is None:
        return config
    # a side-effecting tool: some messages are answered through it (the reasoner may be killed mid-loop)
    config["agents"][0]["tools"] = ["effect"]
    config["http_tools"] = [{"name": "effect", "description": "act on the message", "url": effects_url,
                             "parameters": {"type": "object", "properties": {"text": {"type": "string"}}}}]
    return config


async def _delivery_failed(settings: Settings) -> int:
    records = await read_topic(settings, topic_for(settings.topic_prefix, "delivery.completed"), timeout_s=60)
    statuses: dict[str, str] = {}
    for r in records:
        e = parse_event(r.value)
        statuses[str(e.data.reply_id)] = e.data.status
    return sum(1 for s in statuses.values() if s == "failed")


async def run_chaos(infra: Infra, opts: Options) -> Result:
    make_faults, default_duration = PLANS[opts.plan]
    if opts.plan == "kafka" and infra.kafka is None:
        raise RuntimeError("the kafka plan runs on Apache Kafka: set AGENTBUS_TEST_KAFKA_LIBS (make test-kafka)")
    duration = opts.duration_s or default_duration
    run_id = uuid.uuid4().hex[:6]
    secrets = {c: secret_for(c) for c in CHANNELS}
    llm = await ChaosLLM(hang_s=opts.llm_timeout_s + 1.0).start()
    sink = await ChaosSink(secrets).start()
    effects = await ChaosEffects().start()
    tg = await FakeTelegram().start()
    t0 = time.monotonic()
    try:
        config = chaos_config(sink.url, llm.base_url, opts.llm_timeout_s, effects.url)
        if opts.longconn_messages:
            config["channels"].append(longconn.channel_config(tg, CHANNELS[0]))
        env = {"AGENTBUS_INGRESS_LEASE_TTL_S": str(opts.lease_ttl_s)}
        if opts.plan == "kafka":
            # the platform's own consumer-group timeouts, not the tests' 2 s sessions: on a busy machine a member
            # waiting out its in-flight events in a rebalance missed them, was expelled, and its events ran twice
            env.update({f"AGENTBUS_{name.upper()}": str(Settings.model_fields[name].default)
                        for name in ("session_timeout_ms", "heartbeat_interval_ms")})
        if not opts.embeddings:
            env["AGENTBUS_EMBEDDINGS_URL"] = ""
        async with run_platform(infra, config, env=env, partitions=opts.partitions) as platform:
            settings = Settings(kafka_bootstrap_servers=infra.bootstrap, topic_prefix=platform.prefix)
            load = Load(platform.ingress_url, secrets, plan(opts.conversations, opts.messages, CHANNELS, run_id),
                        duration)
            messages = load.messages
            tg_load = longconn.TelegramLoad(tg, longconn.plan(opts.longconn_conversations, opts.longconn_messages,
                                                              run_id) if opts.longconn_messages else [], duration)
            injector = Injector(platform.stack, infra.stack, llm, sink, infra.kafka)
            faults = make_faults(injector)

            def recovered(end: float) -> bool:
                return recovery_after(end, messages, first_deliveries(sink)) is not None

            print(f"[chaos] {len(messages)} messages over {opts.conversations} conversations, and "
                  f"{len(tg_load.messages)} over a Telegram long connection, spread over {duration:.0f}s; "
                  f"{len(faults)} faults", flush=True)
            t0 = time.monotonic()
            stop = asyncio.Event()
            load_task = asyncio.create_task(_both(load.run(), tg_load.run()))
            fault_task = asyncio.create_task(
                run_faults(faults, opts.first_fault_s, opts.gap_s, recovered, opts.recovery_wait_s, stop,
                           load_task.done))
            await load_task
            load_s = time.monotonic() - t0
            if not fault_task.done():
                print(f"[chaos] warning: the load ended ({load_s:.0f}s) before the faults; later recoveries are "
                      "not measurable (spread the load over more time: --duration)", flush=True)
            await fault_task
            dead = await _drain(settings, messages, sink, opts.drain_timeout_s,
                                lambda: longconn.pending(tg, tg_load.messages))
            await asyncio.sleep(opts.settle_s)  # late duplicates, if any, have their chance to show up
            dead = await read_dead_letters(settings, timeout_s=60)
            drain_s = time.monotonic() - t0 - load_s
            failed = await _delivery_failed(settings)
            log_dir = platform.stack.home.resolve() / "logs"
        total = time.monotonic() - t0
        print(f"[chaos] service logs: {log_dir}", flush=True)
        result = compute(messages, opts.conversations, sink, llm, [d.event for d in dead], failed, faults, t0,
                         load_s, drain_s, total, log_dir, effects)
        if tg_load.messages:
            result.long_connection = longconn.count(tg, tg_load.messages)
        return result
    finally:
        await tg.stop()
        await llm.stop()
        await sink.stop()
        await effects.stop()


async def _both(*runs: Awaitable[None]) -> None:
    await asyncio.gather(*runs)


async def _drain(settings: Settings, messages: list[Any], sink: ChaosSink, timeout_s: float,
                 lc_pending: Callable[[], int]) -> list[Any]:
    """Wait until every accepted message was delivered or dead-lettered, and every long-connection message
    answered (bounded by ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    dead: list[Any] = []
    last_check = 0.0
    last_report = time.monotonic()
    while True:
        delivered = first_deliveries(sink)
        if time.monotonic() - last_check > 5:
            dead = await read_dead_letters(settings, timeout_s=60)
            last_check = time.monotonic()
        dead_ids = {str(d.event.correlation_id) for d in dead}
        pending = [m for m in messages if m.accepted_at is not None and m.webhook_id not in delivered
                   and m.event_id not in dead_ids]
        lc = lc_pending()
        if not pending and not lc:
            return dead
        if time.monotonic() > deadline:
            print(f"[chaos] drain timed out with {len(pending)} messages neither delivered nor dead-lettered, "
                  f"{lc} long-connection messages unanswered", flush=True)
            return dead
        if time.monotonic() - last_report > 15:
            print(f"[chaos] draining: {len(pending)} accepted messages still on their way, {lc} over the long "
                  "connection", flush=True)
            last_report = time.monotonic()
        await asyncio.sleep(0.5)
