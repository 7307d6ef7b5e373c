"""The quota stores against the real PostgreSQL and the chat API's reply followers against the real broker.

Two message windows on two pools (two ingress replicas) never admit more than the limit between them; the
reasoner's token usage adds each inference once; two reply followers (two ingress replicas, each its own
consumer group) both read every reply, and only the one holding the request hands it over."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date

import pytest

from agentbus.bus import Producer
from agentbus.bus.kafka import ensure_topics
from agentbus.db import open_pool
from agentbus.events import Chat, MessageReceived, MessageReceivedData, Sender, utcnow
from agentbus.services.ingress.chat.replies import ReplyFollower, Update, Waiters
from agentbus.services.ingress.quota import PgWindow
from agentbus.services.reasoner.budget import PgUsage
from agentbus.settings import Settings
from agentbus.topics import all_topics
from tests.support.db import service_pool
from tests.support.platform import Infra, unique_prefix
from tests.unit.fakes_chat import answer_to, partial_of

pytestmark = [pytest.mark.integration, pytest.mark.broker]
LIMIT = 5


async def test_two_replicas_windows_admit_the_limit_between_them_and_say_when_to_retry(infra: Infra) -> None:
    async with service_pool(infra.database_url, "ingress", max_size=6) as pool_a:
        async with pool_a.connection() as conn:
            schema = (await (await conn.execute("SELECT current_schema()")).fetchone() or [""])[0]
        pool_b = await open_pool(Settings(database_url=infra.database_url), schema, max_size=6)
        try:
            a, b = PgWindow(pool_a), PgWindow(pool_b)
            verdicts = await asyncio.gather(*((a if i % 2 else b).admit("acme", LIMIT, 60.0) for i in range(12)))
            assert sum(v.admitted for v in verdicts) == LIMIT
            refused = [v.retry_after_s for v in verdicts if not v.admitted]
            assert len(refused) == 12 - LIMIT and all(50 < r <= 60 for r in refused)
            assert (await a.admit("globex", LIMIT, 60.0)).admitted  # a tenant of its own
            # a short window: once the grants have left it, there is room again
            assert [(await b.admit("short", 1, 0.2)).admitted for _ in range(2)] == [True, False]
            await asyncio.sleep(0.3)
            assert (await a.admit("short", 1, 0.2)).admitted
            async with pool_b.connection() as conn:
                row = await (await conn.execute(
                    "SELECT cardinality(grants) FROM message_quota WHERE tenant = 'acme'")).fetchone()
            assert row == (LIMIT,)  # no more grants than the limit are kept
        finally:
            await pool_b.close()


async def test_token_usage_adds_each_inference_once_per_tenant_and_day(infra: Infra) -> None:
    async with service_pool(infra.database_url, "reasoner") as pool:
        usage = PgUsage(pool)
        day, other_day = date(2026, 1, 2), date(2026, 1, 3)
        first, second = uuid.uuid4(), uuid.uuid4()
        assert await usage.used("acme", day) == 0
        assert await usage.add(first, "acme", day, 120) == 120
        assert await usage.add(first, "acme", day, 120) == 120  # the same inference again: nothing added
        assert await usage.add(second, "acme", day, 30) == 150
        assert await usage.add(uuid.uuid4(), "acme", other_day, 7) == 7
        assert await usage.add(uuid.uuid4(), "globex", day, 9) == 9
        assert (await usage.used("acme", day), await usage.used("acme", other_day)) == (150, 7)


def question(platform_message_id: str) -> MessageReceived:
    return MessageReceived.new(MessageReceivedData(
        channel="acme-chat", channel_type="api", agent="assistant", platform_message_id=platform_message_id,
        sender=Sender(id="u"), chat=Chat(id="u"), text="q", received_at=utcnow()),
        source="ingress", tenant="acme", conversation="acme/acme-chat/u")


async def test_every_replica_reads_every_reply_and_the_holder_gets_its_own(infra: Infra) -> None:
    s = Settings(kafka_bootstrap_servers=infra.bootstrap, topic_prefix=unique_prefix(), topic_partitions=3,
                 session_timeout_ms=2000, heartbeat_interval_ms=500)
    await ensure_topics(s, all_topics(s.topic_prefix))
    here, there = Waiters(), Waiters()
    followers = [ReplyFollower(s, here), ReplyFollower(s, there)]
    tasks = [asyncio.create_task(f.run()) for f in followers]
    producer = Producer(s, "reasoner")
    await producer.start()
    try:
        async with asyncio.timeout(60):
            while not all(f.ready for f in followers):
                await asyncio.sleep(0.05)
        q1, q2 = question("chatcmpl-1"), question("chatcmpl-2")
        mine, theirs = here.open("acme-chat", "chatcmpl-1"), there.open("acme-chat", "chatcmpl-2")
        await producer.publish([partial_of(q1, "Hel", 0), answer_to(q1, "Hello"), answer_to(q2, "Bye")])
        async with asyncio.timeout(30):
            got = [await mine.get(), await mine.get()]
            assert await theirs.get() == Update("Bye", True)
        # two topics: the partial and the answer may come in either order (the chat API drops a late partial)
        assert sorted(got, key=lambda u: u.final) == [Update("Hel", False, 0), Update("Hello", True)]
        assert mine.empty() and theirs.empty()  # neither replica took the other's reply
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await producer.stop()
