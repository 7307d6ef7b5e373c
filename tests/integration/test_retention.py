"""Retention against the real PostgreSQL: each service's pruner deletes its own rows past retention.

Rows are written with old timestamps directly (nothing waits for days to pass); each pass is run by hand.
The settings make the redelivery window two days (topics keep records a day; platforms retry for two at
most) and the horizon two days, so a tenant may keep its turns for as little as two days here.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from agentbus.config import PlatformConfig, Retention, Tenant
from agentbus.events import Chat, ReplyGenerated, ReplyGeneratedData
from agentbus.retention import PRUNED, Pruner, Table, pruner
from agentbus.services.egress.bootstrap import DELIVERIES
from agentbus.services.egress.ledger import PgDeliveryLedger
from agentbus.services.egress.ports import Claim, Outcome
from agentbus.services.ingress.dedupe import PgDedupe
from agentbus.services.reasoner.bootstrap import LEDGER_TABLES
from agentbus.services.scheduler.bootstrap import FIRINGS
from agentbus.settings import Settings
from tests.support.db import service_pool
from tests.support.platform import Infra

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)


def settings(infra: Infra, **kw: Any) -> Settings:
    base: dict[str, Any] = {"database_url": infra.database_url, "topic_retention_ms": 86_400_000,
                            "prune_horizon_days": 2.0, "retention_batch": 3}
    return Settings(**{**base, **kw})


def config(*tenants: Tenant) -> PlatformConfig:
    return PlatformConfig(tenants=tenants, agents=())


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


async def pruner_on(pool: AsyncConnectionPool, tables: list[Table], cfg: PlatformConfig, s: Settings) -> Pruner:
    async with pool.connection() as conn:  # the pool's schema (a test's own), not the service's
        schema = (await (await conn.execute("SELECT current_schema()")).fetchone() or [""])[0]
    p = pruner(pool, "memory", tables, cfg, s)
    p.schema = schema
    return p


async def add_turn(pool: AsyncConnectionPool, tenant: str, days: float) -> uuid.UUID:
    eid = uuid.uuid4()
    async with pool.connection() as conn:
        await conn.execute("INSERT INTO turns (event_id, tenant, conversation, role, text, at) "
                           "VALUES (%s, %s, %s, 'user', 'hi', %s)", (eid, tenant, f"{tenant}/c/1", ago(days)))
    return eid


async def ids(pool: AsyncConnectionPool, sql: str) -> set[Any]:
    async with pool.connection() as conn:
        return {r[0] for r in await (await conn.execute(sql)).fetchall()}


async def test_turns_past_each_tenants_retention_are_deleted_and_no_other_tenants(infra: Infra) -> None:
    # acme keeps 5 days, globex the default (30), initech forever, hooli 1 day (held at the 2-day horizon)
    cfg = config(Tenant(id="acme", retention=Retention(turns_days=5)), Tenant(id="globex"),
                 Tenant(id="initech", retention=Retention(turns_days=0)),
                 Tenant(id="hooli", retention=Retention(turns_days=1)))
    async with service_pool(infra.database_url, "memory") as pool:
        rows = {(t, d): await add_turn(pool, t, d) for t in ("acme", "globex", "initech", "hooli", "gone")
                for d in (1.5, 3, 10, 40)}
        p = await pruner_on(pool, [Table("turns", "at", "turns")], cfg, settings(infra, retention_turns_days=30))
        before = PRUNED.labels(schema=p.schema, table="turns")._value.get()
        counts = await p.prune_once()
        left = await ids(pool, "SELECT event_id FROM turns")
        kept = {k for k, eid in rows.items() if eid in left}
        assert kept == {("acme", 1.5), ("acme", 3),
                        ("globex", 1.5), ("globex", 3), ("globex", 10),
                        ("initech", 1.5), ("initech", 3), ("initech", 10), ("initech", 40),
                        ("hooli", 1.5),
                        ("gone", 1.5), ("gone", 3), ("gone", 10)}  # a tenant no longer configured: the default
        assert counts == {"processed_events": 0, "turns": 7}  # in batches of 3
        assert PRUNED.labels(schema=p.schema, table="turns")._value.get() - before == 7
        assert await p.prune_once() == {"processed_events": 0, "turns": 0}  # a second pass finds nothing


async def test_a_pruned_turns_vector_and_waiting_vector_go_with_it(infra: Infra) -> None:
    from agentbus.services.memory.bootstrap import retained_tables
    from agentbus.services.memory.inprocessvectors import InProcessVectorIndex
    from agentbus.services.memory.ports import Scope

    cfg = config(Tenant(id="acme", retention=Retention(turns_days=5)), Tenant(id="globex"))
    dim = 4
    async with service_pool(infra.database_url, "memory") as pool:
        index = InProcessVectorIndex(pool, dim)
        made = {}
        for tenant in ("acme", "globex"):
            for days in (1, 10, 11, 12, 13):  # acme's four old turns take two batches of three
                eid = made[(tenant, days)] = await add_turn(pool, tenant, days)
                await index.upsert(eid, [1.0, 0.0, 0.0, 0.0], Scope(tenant), f"{tenant}/c/1", "user",
                                   f"{tenant} {days}", ago(days))
        async with pool.connection() as conn:  # a turn of acme's still waiting for its vector, and globex's
            for tenant in ("acme", "globex"):
                await conn.execute("INSERT INTO deferred_vectors (id, tenant, conversation, role, text, at) "
                                   "VALUES (%s, %s, 'c', 'user', 'later', %s)", (uuid.uuid4(), tenant, ago(10)))
        assert len(await index.search([1.0, 0, 0, 0], Scope("acme"), 9)) == 5
        p = await pruner_on(pool, retained_tables(index), cfg, settings(infra))
        counts = await p.prune_once()
        assert counts == {"processed_events": 0, "turns": 4, "deferred_vectors": 1}
        assert await ids(pool, "SELECT id FROM vectors") == {made[("acme", 1)]} | {
            eid for (tenant, _), eid in made.items() if tenant == "globex"}
        assert await ids(pool, "SELECT event_id FROM turns") == await ids(pool, "SELECT id FROM vectors")
        assert await ids(pool, "SELECT tenant FROM deferred_vectors") == {"globex"}
        assert [r.text for r in await index.search([1.0, 0, 0, 0], Scope("acme"), 9)] == ["acme 1"]
        await index.aclose()


async def test_nothing_is_pruned_while_retention_is_forever(infra: Infra) -> None:
    cfg = config(Tenant(id="acme"))
    async with service_pool(infra.database_url, "memory") as pool:
        old = await add_turn(pool, "acme", 4000)
        p = await pruner_on(pool, [Table("turns", "at", "turns")], cfg, settings(infra))
        assert await p.prune_once() == {"processed_events": 0, "turns": 0}
        assert await ids(pool, "SELECT event_id FROM turns") == {old}


async def test_a_replica_skips_the_round_while_another_prunes(infra: Infra) -> None:
    cfg = config(Tenant(id="acme", retention=Retention(turns_days=3)))
    async with service_pool(infra.database_url, "memory") as pool:
        old = await add_turn(pool, "acme", 10)
        p = await pruner_on(pool, [Table("turns", "at", "turns")], cfg, settings(infra))
        async with pool.connection() as other:  # another replica's pass holds the schema's lock
            await other.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"agentbus.retention.{p.schema}",))
            assert await p.prune_once() is None
            assert await ids(pool, "SELECT event_id FROM turns") == {old}
            await other.execute("SELECT pg_advisory_unlock(hashtext(%s))", (f"agentbus.retention.{p.schema}",))
        assert (await p.prune_once() or {})["turns"] == 1


async def test_the_inference_ledger_follows_its_tenants_retention(infra: Infra) -> None:
    cfg = config(Tenant(id="acme", retention=Retention(ledger_days=3)), Tenant(id="globex"))
    async with service_pool(infra.database_url, "reasoner") as pool:
        made: dict[tuple[str | None, float], uuid.UUID] = {}
        async with pool.connection() as conn:
            for tenant in ("acme", "globex", None):  # None: a row from before the ledger kept its tenant
                for days in (2.5, 5, 12):
                    eid = made[(tenant, days)] = uuid.uuid4()
                    await conn.execute(
                        "INSERT INTO inferences (input_event_id, correlation_id, agent, model, provider, models_tried,"
                        " attempts, request, output_text, latency_ms, created_at, tenant) VALUES (%s, %s, 'a', 'm', "
                        "'p', '{m}', 1, '{}', 'out', 1.0, %s, %s)", (eid, eid, ago(days), tenant))
                    await conn.execute("INSERT INTO steps (input_event_id, n, call_id, kind, data, created_at, tenant)"
                                       " VALUES (%s, 0, '', 'llm', '{}', %s, %s)", (eid, ago(days), tenant))
            await conn.execute("INSERT INTO token_usage_counted (inference_id, counted_at) VALUES (%s, %s), (%s, %s)",
                               (made[("acme", 2.5)], ago(1), made[("acme", 5)], ago(5)))
        p = await pruner_on(pool, LEDGER_TABLES, cfg, settings(infra, retention_ledger_days=10))
        counts = await p.prune_once()
        expect = {made[k] for k in [("acme", 2.5), ("globex", 2.5), ("globex", 5), (None, 2.5), (None, 5)]}
        assert await ids(pool, "SELECT input_event_id FROM inferences") == expect
        assert await ids(pool, "SELECT input_event_id FROM steps") == expect
        assert await ids(pool, "SELECT inference_id FROM token_usage_counted") == {made[("acme", 2.5)]}
        assert counts == {"processed_events": 0, "inferences": 4, "steps": 4, "token_usage_counted": 1,
                          "summaries": 0}


def reply(tenant: str) -> ReplyGenerated:
    return ReplyGenerated.new(
        ReplyGeneratedData(agent="a", channel=tenant, channel_type="webhook", chat=Chat(id="c"), text="hi",
                           model="m"),
        source="reasoner", tenant=tenant, conversation=f"{tenant}/{tenant}/c",
    )


async def test_deliveries_past_retention_go_and_a_recent_redelivered_reply_is_still_not_pushed(infra: Infra) -> None:
    cfg = config(Tenant(id="acme", retention=Retention(deliveries_days=3)), Tenant(id="globex"))
    async with service_pool(infra.database_url, "egress") as pool:
        ledger = PgDeliveryLedger(pool)
        replies = {(t, d): reply(t) for t in ("acme", "globex") for d in (0, 5)}
        for r in replies.values():
            assert await ledger.claim(r, "c") == Claim("claimed")
            await ledger.finish(r, "c", Outcome("delivered", attempts=1), [])
        stuck = reply("acme")  # claimed long ago and never finished: its outcome is unknown, its claim stays
        assert await ledger.claim(stuck, "c") == Claim("claimed")
        async with pool.connection() as conn:
            for (_, days), r in replies.items():
                await conn.execute("UPDATE deliveries SET claimed_at = %s WHERE reply_id = %s", (ago(days), r.id))
                await conn.execute("UPDATE processed_events SET processed_at = %s WHERE event_id = %s",
                                   (ago(days), r.id))
            await conn.execute("UPDATE deliveries SET claimed_at = %s WHERE reply_id = %s", (ago(30), stuck.id))
        p = await pruner_on(pool, [DELIVERIES], cfg, settings(infra))
        counts = await p.prune_once()
        assert counts == {"processed_events": 2, "deliveries": 1}
        assert await ids(pool, "SELECT reply_id FROM deliveries") == {
            replies[("acme", 0)].id, replies[("globex", 0)].id, replies[("globex", 5)].id, stuck.id}
        # the recent replies come again (a redelivery): answered from their records, never claimed to push again
        for key in (("acme", 0), ("globex", 0)):
            assert isinstance(await ledger.claim(replies[key], "c"), list)
        # globex's 5-day-old delivery outlived its processed record (retention forever): still done, not pushed
        assert await ledger.claim(replies[("globex", 5)], "c") == []
        await ledger.aclose()


async def test_dedupe_records_past_the_horizon_go_and_a_recent_platform_retry_is_still_a_duplicate(
        infra: Infra) -> None:
    async with service_pool(infra.database_url, "ingress") as pool:
        dedupe = PgDedupe(pool)
        for i, days in enumerate((0, 1.9, 2.5, 30)):
            await dedupe.record("acme", f"evt-{i}", uuid.uuid4())
            async with pool.connection() as conn:
                await conn.execute("UPDATE inbound_dedupe SET received_at = %s WHERE dedupe_id = %s",
                                   (ago(days), f"evt-{i}"))
        p = await pruner_on(pool, [Table("inbound_dedupe", "received_at")], config(), settings(infra))
        assert (await p.prune_once() or {})["inbound_dedupe"] == 2
        assert [await dedupe.seen("acme", f"evt-{i}") for i in range(4)] == [True, True, False, False]
        await dedupe.aclose()


async def test_processed_records_past_the_horizon_go_and_recent_ones_still_answer_a_redelivery(infra: Infra) -> None:
    from agentbus.db import processed_outputs, record_processed

    async with service_pool(infra.database_url, "egress") as pool:
        recent, old = reply("acme"), reply("acme")
        async with pool.connection() as conn:
            for r, days in ((recent, 1.9), (old, 2.1)):
                await record_processed(conn, r, [])
                await conn.execute("UPDATE processed_events SET processed_at = %s WHERE event_id = %s",
                                   (ago(days), r.id))
        p = await pruner_on(pool, [], config(), settings(infra))
        assert await p.prune_once() == {"processed_events": 1}
        async with pool.connection() as conn:
            assert await processed_outputs(conn, recent) == []
            assert await processed_outputs(conn, old) is None


async def test_published_firings_past_the_horizon_go_and_the_outbox_stays(infra: Infra) -> None:
    async with service_pool(infra.database_url, "scheduler") as pool:
        async with pool.connection() as conn:
            for job, days, published in (("old", 5, True), ("unsent", 5, False), ("new", 1, True)):
                await conn.execute("INSERT INTO firings (job_id, due_at, event_id, event, published, created_at) "
                                   "VALUES (%s, %s, %s, '{}', %s, %s)", (job, ago(days), uuid.uuid4(), published,
                                                                        ago(days)))
        p = await pruner_on(pool, [FIRINGS], config(), settings(infra))
        assert (await p.prune_once() or {})["firings"] == 1
        assert await ids(pool, "SELECT job_id FROM firings") == {"unsent", "new"}


async def test_the_soak_reads_the_sizes_of_the_tables_retention_prunes(infra: Infra) -> None:
    from bench.tables import table_sizes

    async with service_pool(infra.database_url, "memory") as pool:
        for days in (1, 2, 3):
            await add_turn(pool, "acme", days)
        async with pool.connection() as conn:
            schema = (await (await conn.execute("SELECT current_schema()")).fetchone() or [""])[0]
        sizes = await table_sizes(infra.database_url, schema.removeprefix("memory"))
        assert sizes["memory.turns"][0] == 3 and sizes["memory.turns"][1] > 0
        assert sizes["memory.processed_events"][0] == 0
        assert "egress.deliveries" not in sizes  # no such schema under this suffix: left out
