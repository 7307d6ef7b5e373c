"""Forgetting a person end to end, as processes on the real broker and PostgreSQL: a person tells the agent
something distinctive and is answered (the echo model repeats it back, so it is in every store and topic of
the pipeline); ``agentbus forget`` erases them; every service answers, and then no byte of their text is left
anywhere: not in any table of any schema of the database, not in any record of any topic. Reading the log
shows their messages as ``[forgotten]``, a replay of the conversation runs on ``[forgotten]``, and another
person's conversation is untouched."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer

from agentbus.cli.tools import signed_request
from agentbus.eventlog import read, read_records
from agentbus.events import MessageReceived
from agentbus.sealing import FORGOTTEN
from agentbus.services.ingress.forgetme import SAID
from agentbus.settings import Settings
from agentbus.topics import topics_of_type
from tests.support.keys import platform_keyring
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


async def cli(infra: Infra, p: Platform, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, **infra.env, **p.env, "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentbus.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def rows(infra: Infra, sql: str, *params: object) -> list[tuple[object, ...]]:
    async with await psycopg.AsyncConnection.connect(infra.database_url, autocommit=True) as conn:
        return await (await conn.execute(sql, params)).fetchall()  # type: ignore[arg-type]


async def found_in_database(infra: Infra, needles: list[bytes]) -> list[str]:
    """Every table of every schema (but PostgreSQL's own) whose rows, as text, hold a needle: text and json
    columns as they are, bytea as its hex (the needles are looked for in both forms)."""
    patterns = [n.decode() for n in needles] + [n.hex() for n in needles]
    tables = await rows(infra, "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = "
                               "'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')")
    assert len(tables) > 20, tables
    hits = []
    async with await psycopg.AsyncConnection.connect(infra.database_url, autocommit=True) as conn:
        for schema, table in tables:
            cur = await conn.execute(  # type: ignore[call-overload]
                f'SELECT count(*) FROM "{schema}"."{table}" t WHERE strpos(lower(t::text), %s) > 0 '
                + " ".join("OR strpos(lower(t::text), %s) > 0" for _ in patterns[1:]),
                [p.lower() for p in patterns])
            row = await cur.fetchone()
            if row and row[0]:
                hits.append(f"{schema}.{table}: {row[0]} row(s)")
    return hits


async def found_in_topics(infra: Infra, p: Platform, needles: list[bytes]) -> tuple[list[str], int]:
    """Every record of every topic of the platform (its prefix) holding a needle in its value, key or headers."""
    probe = AIOKafkaConsumer(bootstrap_servers=infra.bootstrap)
    await probe.start()
    try:
        topics = sorted(t for t in await probe.topics() if t.startswith(f"{p.prefix}."))
    finally:
        await probe.stop()
    assert len(topics) > 20, topics
    s = Settings(kafka_bootstrap_servers=infra.bootstrap, topic_prefix=p.prefix)
    hits, scanned = [], 0
    for rec in await read_records(s, topics, timeout_s=60):
        scanned += 1
        blob = (rec.value or b"") + (rec.key or b"") + b"".join(v for _, v in rec.headers or ())
        if any(n in blob for n in needles):
            hits.append(f"{rec.topic}@{rec.partition}:{rec.offset}")
    return hits, scanned


async def test_after_an_erasure_no_byte_of_the_persons_text_is_anywhere(infra: Infra, platform: Platform,
                                                                        sink: WebhookSink) -> None:
    tag = uuid.uuid4().hex[:8]
    alice, bob = f"alice-{tag}", f"bob-{tag}"
    lockers, bikes = f"lockers-{tag}", f"bikes-{tag}"
    secret, kept = f"my locker code is 4417 zebra-quartz-{tag}", f"my bicycle lock is 9021 walrus-amber-{tag}"
    await say(platform, sink, lockers, alice, secret)
    await say(platform, sink, lockers, alice, "what is my locker code?")  # its context and answer repeat it
    await say(platform, sink, bikes, bob, kept)
    needles = [f"zebra-quartz-{tag}".encode(), "code is 4417 zebra".encode()]

    # before: the text is in the stores (memory keeps it), but sealed in every topic
    assert await found_in_database(infra, needles), "the test would prove nothing: the text is stored nowhere"
    topic_hits, scanned = await found_in_topics(infra, platform, needles)
    assert topic_hits == [] and scanned >= 15, (topic_hits, scanned)

    code, out, err = await cli(infra, platform, "forget", "--tenant", "acme", "--user", alice, "--yes")
    assert code == 0, (out, err)
    assert f"erasure of {alice!r} requested" in out
    for service in ("ingress", "memory", "reasoner"):
        assert f"  {service}:" in out, out
    assert out.count("1 key deleted") == 1, out  # the first service to act shreds the key; the others find it gone

    assert await found_in_database(infra, needles) == []
    topic_hits, scanned = await found_in_topics(infra, platform, needles)
    assert topic_hits == [], topic_hits

    mem, rsn = platform.schema("memory"), platform.schema("reasoner")
    assert await rows(infra, f'SELECT 1 FROM "{mem}".turns WHERE owner = %s', alice) == []
    # bob's conversation is untouched: his turns, his inferences, his text in the log
    assert len(await rows(infra, f'SELECT 1 FROM "{mem}".turns WHERE text LIKE %s', f"%walrus-amber-{tag}%")) == 2
    assert await rows(infra, f'SELECT 1 FROM "{rsn}".inferences WHERE owners @> ARRAY[%s]', bob)
    s = Settings(kafka_bootstrap_servers=infra.bootstrap, topic_prefix=platform.prefix)
    async with platform_keyring(platform) as keys:
        logged = [lg.event for lg in await read(s, topics_of_type(platform.prefix, MessageReceived.TYPE),
                                                keyring=keys)]
    said = {(e.data.sender.id, e.data.text) for e in logged if isinstance(e, MessageReceived)}
    assert said >= {(alice, FORGOTTEN), (bob, kept)} and not any(t == secret for _, t in said)
    # the audit log: who asked, and what each service deleted
    audit = await rows(infra, f'SELECT actor, action FROM "{platform.schema("ingress")}".audit_log '
                              "WHERE target = %s ORDER BY actor", alice)
    assert audit == [("cli", "users.forget"), ("service:ingress", "users.erased"),
                     ("service:memory", "users.erased"), ("service:reasoner", "users.erased")]

    # a repeated erasure is harmless: nothing left to delete, every service answers again
    code, out, err = await cli(infra, platform, "forget", "--tenant", "acme", "--user", alice, "--yes")
    assert code == 0 and "key deleted" not in out and "memory: 0 deferred_vectors, 0 turns, 0 vectors" in out, (
        out, err)

    # the conversation's trace and a replay of it read [forgotten] where the person's words were
    first = next(e for e in logged if isinstance(e, MessageReceived) and e.data.sender.id == alice)
    code, out, err = await cli(infra, platform, "trace", str(first.correlation_id), "--json")
    assert code == 0, err
    chain = json.loads(out)
    assert chain and FORGOTTEN in out and f"zebra-quartz-{tag}" not in out
    code, out, err = await cli(infra, platform, "replay", "--from", "message", "--conversation", lockers,
                               "--rerun-llm", "--json", "--timeout", "90")
    assert code == 0, (out, err)
    report = json.loads(out)
    assert report["messages"] and all(FORGOTTEN in (m["replayed"] or "") for m in report["messages"]), report
    assert f"zebra-quartz-{tag}" not in out


async def until_erased(infra: Infra, p: Platform, user: str, timeout_s: float = 60.0) -> list[tuple[object, ...]]:
    """Until every service's answer to the person's erasure is in the audit log."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        done = await rows(infra, f'SELECT actor FROM "{p.schema("ingress")}".audit_log WHERE target = %s '
                                 "AND action = 'users.erased' ORDER BY actor", user)
        if len(done) >= 3:
            return done
        assert asyncio.get_running_loop().time() < deadline, f"not every service erased {user}: {done}"
        await asyncio.sleep(0.3)


async def test_the_person_asks_in_chat_confirms_once_and_is_forgotten(infra: Infra, platform: Platform,
                                                                      sink: WebhookSink) -> None:
    tag = uuid.uuid4().hex[:8]
    carol, chat = f"carol-{tag}", f"passports-{tag}"
    secret = f"my passport number is E-{tag}-orchid"
    await say(platform, sink, chat, carol, secret)
    needles = [f"E-{tag}-orchid".encode()]
    assert await found_in_database(infra, needles)

    async def ask(text: str, answer: str) -> None:
        body, headers = signed_request(secret_for("acme"), {"conversation": chat, "sender": {"id": carol},
                                                             "text": text})
        async with httpx.AsyncClient() as c:
            r = await c.post(f"{platform.ingress_url}/v1/webhooks/acme", content=body, headers=headers)
        assert r.status_code == 202, r.text
        await sink.wait_for(lambda m: m["conversation"] == chat and answer in m["text"])

    await ask("Forget everything about me", 'reply "yes, forget me" within 10 minutes')
    assert len(await rows(infra, f'SELECT 1 FROM "{platform.schema("memory")}".turns WHERE owner = %s', carol)) == 2
    await ask("yes, forget me", "Done: I have forgotten everything about you.")
    assert await until_erased(infra, platform, carol) == [
        ("service:ingress",), ("service:memory",), ("service:reasoner",)]
    [(actor,)] = await rows(infra, f'SELECT actor FROM "{platform.schema("ingress")}".audit_log WHERE target = %s '
                                   "AND action = 'users.forget'", carol)
    assert actor == f"user:{carol}"
    # what may be left of carol is the agent's own answers of the exchange (the last one may be remembered after
    # the erasure: it is published after the command, and memory handles the two on their own topics)
    left = await rows(infra, f'SELECT text FROM "{platform.schema("memory")}".turns WHERE owner = %s', carol)
    assert {t for (t,) in left} <= {SAID["en"]["ask"], SAID["en"]["done"]}, left
    assert await found_in_database(infra, needles) == []
    assert (await found_in_topics(infra, platform, needles))[0] == []


async def test_an_admin_forgets_a_person_through_the_operator_api(infra: Infra, platform: Platform,
                                                                  sink: WebhookSink) -> None:
    tag = uuid.uuid4().hex[:8]
    dave = f"dave-{tag}"
    await say(platform, sink, f"keys-{tag}", dave, f"the safe opens with 31-{tag}-topaz")
    code, admin, err = await cli(infra, platform, "tokens", "create", "--name", "dpo", "--tenant", "acme",
                                 "--role", "admin", "--expires-days", "1")
    assert code == 0, err
    code, operator, err = await cli(infra, platform, "tokens", "create", "--name", "ops", "--tenant", "acme",
                                    "--role", "operator", "--expires-days", "1")
    assert code == 0, err
    async with httpx.AsyncClient(base_url=f"{platform.ingress_url}/api/v1") as api:
        refused = await api.post("/tenants/acme/erasures", json={"user": dave},
                                 headers={"authorization": f"Bearer {operator.strip()}"})
        assert refused.status_code == 403
        bad = await api.post("/tenants/acme/erasures", json={"user": "a\nb"},
                             headers={"authorization": f"Bearer {admin.strip()}"})
        assert bad.status_code == 422 and bad.json()["problems"]
        resp = await api.post("/tenants/acme/erasures", json={"user": dave},
                              headers={"authorization": f"Bearer {admin.strip()}"})
        assert resp.status_code == 202, resp.text
        assert resp.json()["services"] == ["ingress", "memory", "reasoner"]
    await until_erased(infra, platform, dave)
    assert await found_in_database(infra, [f"31-{tag}-topaz".encode()]) == []
    audit = await rows(infra, f'SELECT action, outcome FROM "{platform.schema("ingress")}".audit_log '
                              "WHERE action LIKE 'users.%%' AND (target = %s OR target LIKE %s)", dave, "%/erasures")
    assert ("users.forget", "ok") in audit and ("users.forget", "denied") in audit
