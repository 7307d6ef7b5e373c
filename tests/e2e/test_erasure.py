"""Forgetting a person end to end, as processes on the real broker and PostgreSQL: a person tells the agent
something distinctive and is answered (the echo model repeats it back, so it is in every store and topic of
the pipeline); ``agentbus forget`` erases them; every service answers, their rows are gone from every store,
and another person's stay."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest

from agentbus.cli.tools import signed_request
from tests.support.platform import Infra, Platform, base_config, run_platform, secret_for
from tests.support.remembered import until_remembered
from tests.support.servers import WebhookSink

pytestmark = pytest.mark.e2e

SERVICES = ("ingress", "memory", "reasoner", "egress")


@pytest.fixture(scope="module")
async def platform(infra: Infra, sink: WebhookSink) -> AsyncIterator[Platform]:
    assert sink.server is not None
    async with run_platform(infra, base_config(sink.server.url), services=SERVICES) as p:
        yield p


async def say(p: Platform, sink: WebhookSink, chat: str, sender: str, text: str) -> None:
    body, headers = signed_request(secret_for("acme"), {"conversation": chat, "sender": {"id": sender},
                                                         "text": text})
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{p.ingress_url}/v1/webhooks/acme", content=body, headers=headers)
    assert r.status_code == 202, r.text
    await sink.wait_for(lambda m: m["conversation"] == chat and text in m["text"])
    await until_remembered(p, "acme", chat, text)


async def forget_cli(infra: Infra, p: Platform, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, **infra.env, **p.env, "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentbus.cli", "forget", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def rows(infra: Infra, sql: str, *params: object) -> list[tuple[object, ...]]:
    async with await psycopg.AsyncConnection.connect(infra.database_url, autocommit=True) as conn:
        return await (await conn.execute(sql, params)).fetchall()  # type: ignore[arg-type]


async def test_a_forgotten_persons_text_is_gone_from_every_store(infra: Infra, platform: Platform,
                                                                 sink: WebhookSink) -> None:
    tag = uuid.uuid4().hex[:6]
    alice, bob = f"alice-{tag}", f"bob-{tag}"
    secret, kept = f"my locker code is 4417 zebra-quartz-{tag}", f"my bicycle lock is 9021 walrus-amber-{tag}"
    await say(platform, sink, f"lockers-{tag}", alice, secret)
    await say(platform, sink, f"lockers-{tag}", alice, "what is my locker code?")
    await say(platform, sink, f"bikes-{tag}", bob, kept)

    mem, rsn = platform.schema("memory"), platform.schema("reasoner")
    assert await rows(infra, f'SELECT 1 FROM "{mem}".turns WHERE text LIKE %s', f"%{tag}%")

    code, out, err = await forget_cli(infra, platform, "--tenant", "acme", "--user", alice, "--yes")
    assert code == 0, (out, err)
    assert f"erasure of {alice!r} requested" in out
    for service in ("ingress", "memory", "reasoner"):
        assert f"  {service}:" in out, out

    like = f"%zebra-quartz-{tag}%"
    assert await rows(infra, f'SELECT event_id FROM "{mem}".turns WHERE text LIKE %s', like) == []
    assert await rows(infra, f'SELECT id FROM "{mem}".vectors WHERE text LIKE %s', like) == []
    assert await rows(infra, f'SELECT input_event_id FROM "{rsn}".inferences WHERE request::text LIKE %s '
                             "OR output_text LIKE %s", like, like) == []
    assert await rows(infra, f'SELECT 1 FROM "{mem}".turns WHERE owner = %s', alice) == []
    # bob's conversation is untouched
    assert len(await rows(infra, f'SELECT 1 FROM "{mem}".turns WHERE text LIKE %s', f"%walrus-amber-{tag}%")) == 2
    assert await rows(infra, f'SELECT 1 FROM "{rsn}".inferences WHERE owners @> ARRAY[%s]', bob)
    # the audit log: who asked, and what each service deleted
    audit = await rows(infra, f'SELECT actor, action FROM "{platform.schema("ingress")}".audit_log '
                              "WHERE target = %s ORDER BY actor", alice)
    assert audit == [("cli", "users.forget"), ("service:ingress", "users.erased"),
                     ("service:memory", "users.erased"), ("service:reasoner", "users.erased")]

    # a repeated erasure is harmless: nothing left to delete, every service answers again
    code, out, err = await forget_cli(infra, platform, "--tenant", "acme", "--user", alice, "--yes")
    assert code == 0 and "key deleted" not in out, (out, err)
