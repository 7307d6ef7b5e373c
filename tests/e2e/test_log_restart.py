"""`make up`'s stack stopped and started again on the same folder: its in-memory broker comes back empty, the
log is restored from ingress's archive before any service starts, so the earlier message is still on the log
(trace finds it) and nothing is answered twice."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from agentbus.cli.tools import signed_request
from agentbus.eventlog import Filter, read
from agentbus.settings import Settings
from agentbus.stack.stack import Ports, Stack
from agentbus.topics import all_topics
from tests.support.platform import base_config, secret_for
from tests.support.servers import FakeLLM, WebhookSink

pytestmark = pytest.mark.e2e

SERVICES = ("ingress", "memory", "reasoner", "egress")


def stack(home: Path, cfg: Path) -> Stack:
    env = {"AGENTBUS_EMBEDDINGS_URL": "", "AGENTBUS_SESSION_TIMEOUT_MS": "2000",
           "AGENTBUS_HEARTBEAT_INTERVAL_MS": "500", "AGENTBUS_SHUTDOWN_GRACE_S": "5", "AGENTBUS_LOG_SNAPSHOT_S": "0.5",
           "AGENTBUS_TOPIC_PARTITIONS": "3"}
    return Stack(home=home, config_file=cfg, ports=Ports.free(), env=env, services=SERVICES,
                 echo=bool(os.environ.get("AGENTBUS_TEST_ECHO")))


async def send(s: Stack, conv: str, text: str) -> None:
    body, headers = signed_request(secret_for("acme"), {"conversation": conv, "sender": {"id": "u"}, "text": text})
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{s.ingress_url()}/v1/webhooks/acme", content=body, headers=headers)
    assert r.status_code == 202, r.text


def settings_of(s: Stack) -> Settings:
    return Settings(kafka_bootstrap_servers=s.service_env["AGENTBUS_KAFKA_BOOTSTRAP_SERVERS"],
                    database_url=s.service_env["AGENTBUS_DATABASE_URL"])


async def archived(s: Stack, conv: str) -> int:
    """Rows of the archive (with their bytes) of ``conv``'s events, and whether memory's group has a snapshot."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(s.service_env["AGENTBUS_DATABASE_URL"]) as conn:
        [n] = await (await conn.execute(  # type: ignore[misc]
            "SELECT count(*) FROM eventlog.records WHERE conversation LIKE %s AND value IS NOT NULL",
            (f"%{conv}",))).fetchone()
        [g] = await (await conn.execute(  # type: ignore[misc]
            "SELECT count(*) FROM eventlog.group_offsets WHERE group_id LIKE '%.memory' AND committed > 0")).fetchone()
    return int(n) if g else 0


async def test_the_log_survives_a_restart_of_the_embedded_stack() -> None:
    home = Path(tempfile.mkdtemp(prefix="agentbus-restart-"))
    llm = await FakeLLM().start()
    sink = await WebhookSink({"acme": secret_for("acme"), "globex": secret_for("globex")}).start()
    assert sink.server is not None
    cfg = home / "agentbus.yaml"
    cfg.write_text(yaml.safe_dump(base_config(sink.server.url, llm.base_url)), encoding="utf-8")
    first_conv, second_conv = f"a-{uuid.uuid4().hex[:6]}", f"b-{uuid.uuid4().hex[:6]}"
    try:
        one = stack(home / "stack", cfg)
        try:
            await one.start()
            assert one.restored == 0  # a new folder: nothing to restore
            await send(one, first_conv, "remember the first start")
            await sink.wait_for(lambda m: m["conversation"].endswith(first_conv), timeout=60)
            async with asyncio.timeout(30):  # the reply's chain (message → context → inference → reply → push)
                while await archived(one, first_conv) < 5:
                    await asyncio.sleep(0.3)
            before = await read(settings_of(one), all_topics("agentbus"), Filter(conversation=first_conv))
        finally:
            await one.stop()

        two = stack(home / "stack", cfg)
        try:
            await two.start()
            assert two.restored >= len(before)
            # the first message's events are on the new broker's log again, the same events
            after = await read(settings_of(two), all_topics("agentbus"), Filter(conversation=first_conv))
            assert [lg.event.id for lg in after] == [lg.event.id for lg in before]
            correlation = str(before[0].event.correlation_id)
            out = subprocess.run([sys.executable, "-m", "agentbus.cli", "trace", correlation, "--json"],
                                 capture_output=True, text=True, timeout=60,
                                 env={**os.environ, **two.env, **two.service_env})
            assert out.returncode == 0, out.stdout + out.stderr
            traced = [item["event"]["id"] for item in json.loads(out.stdout)]
            assert traced == [str(lg.event.id) for lg in before if str(lg.event.correlation_id) == correlation]
            assert {item["event"]["type"] for item in json.loads(out.stdout)} >= {"message.received",
                                                                                  "reply.generated"}
            # the platform goes on: a new message is answered, and nothing of the first is answered again
            await send(two, second_conv, "and the second")
            await sink.wait_for(lambda m: m["conversation"].endswith(second_conv), timeout=60)
            await asyncio.sleep(2)
        finally:
            await two.stop()
        firsts = [m for m in sink.received if m["conversation"].endswith(first_conv)]
        assert len(firsts) == 1, f"the first message was answered {len(firsts)} times"
        assert len([m for m in sink.received if m["conversation"].endswith(second_conv)]) == 1
    finally:
        await sink.stop()
        await llm.stop()
