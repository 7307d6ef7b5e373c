"""Scheduled jobs go through the same pipeline, and fire once per due time even with two scheduler replicas."""

from __future__ import annotations

import asyncio
from collections import Counter

import psycopg
import pytest

from tests.support.platform import Infra, base_config, run_platform, secret_for
from tests.support.servers import WebhookSink

pytestmark = pytest.mark.e2e


async def test_job_fires_once_per_due_time_across_replicas(infra: Infra) -> None:
    sink = await WebhookSink({"acme": secret_for("acme"), "globex": secret_for("globex")}).start()
    assert sink.server is not None
    cfg = base_config(sink.server.url)
    cfg["jobs"] = [{"id": "tick", "every_s": 1, "channel": "acme", "chat": "standup", "prompt": "Time for standup"}]
    try:
        async with run_platform(infra, cfg, env={"AGENTBUS_SCHEDULER_TICK_S": "0.2"}) as p:
            second = p.stack.service_proc("scheduler")
            second.name = "scheduler-2"
            from agentbus.stack.procs import free_port

            port = free_port()
            second.env["AGENTBUS_HTTP_PORT"] = str(port)
            second.ready = None
            await second.start()
            try:
                await sink.wait_for(lambda m: m["conversation"] == "standup", timeout=30)
                await asyncio.sleep(4)
            finally:
                await second.stop()
                await p.stack.procs["scheduler"].stop()
            await asyncio.sleep(2)  # let the last firings drain through the pipeline
            async with await psycopg.AsyncConnection.connect(infra.database_url) as conn:
                cur = await conn.execute(f'SELECT due_at FROM "{p.schema("scheduler")}".firings WHERE job_id = %s',
                                         ("tick",))
                firings = [r[0] for r in await cur.fetchall()]
            deadline = asyncio.get_running_loop().time() + 15
            while asyncio.get_running_loop().time() < deadline:
                pushes = [m for m in sink.received if m["conversation"] == "standup"]
                if len(pushes) >= len(firings):
                    break
                await asyncio.sleep(0.2)
            pushes = [m for m in sink.received if m["conversation"] == "standup"]
            assert len(firings) >= 3
            assert len(pushes) == len(firings), (len(pushes), len(firings))
            assert max(Counter(m["_webhook_id"] for m in pushes).values()) == 1
            assert all("Time for standup" in m["text"] for m in pushes)
    finally:
        await sink.stop()
