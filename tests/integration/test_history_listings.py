"""The services' admin listings the operator API reads, end to end: rows written by each service's own
writer (memory's turn store, egress's delivery ledger, the reasoner's inference ledger) in the real
PostgreSQL, served by the service's route on a real HTTP server, read by the operator API's adapter."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.routing import BaseRoute

from agentbus.events import Attachment, Chat, MessageReceived, MessageReceivedData, Sender, Turn, utcnow
from agentbus.http import LoopbackServer
from agentbus.services.egress.ledger import PgDeliveryLedger
from agentbus.services.egress.ports import Outcome
from agentbus.services.egress.routes import PgDeliveries, delivery_routes
from agentbus.services.ingress.api.history import EgressDeliveries, MemoryHistory, ReasonerInferences
from agentbus.services.ingress.api.ports import ReadRefused
from agentbus.services.memory.history import PgHistory, history_routes
from agentbus.services.memory.store import PgTurnStore
from agentbus.services.reasoner.ledger import Ledger
from agentbus.services.reasoner.routes import PgInferences, inference_routes
from tests.integration.test_batched_ledgers import completion, context, delivered, record, reply_for
from tests.support.db import service_pool
from tests.support.platform import Infra

pytestmark = pytest.mark.integration


@asynccontextmanager
async def served(routes: Sequence[BaseRoute]) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    server = LoopbackServer(routes)
    await server.start()
    try:
        async with httpx.AsyncClient() as client:
            yield server.url, client
    finally:
        await server.stop()


def message(tenant: str, chat: str, text: str, attachments: tuple[Attachment, ...] = ()) -> MessageReceived:
    return MessageReceived.new(
        MessageReceivedData(channel=f"{tenant}-hook", channel_type="webhook", agent="assistant",
                            platform_message_id=uuid.uuid4().hex, sender=Sender(id="u1"), chat=Chat(id=chat),
                            text=text, received_at=utcnow(), attachments=attachments),
        source="ingress", tenant=tenant, conversation=f"{tenant}/{tenant}-hook/{chat}",
    )


async def remember(store: PgTurnStore, e: MessageReceived) -> None:
    turn = Turn(role="user", text=e.data.text, at=e.data.received_at, event_id=e.id, sender="u1",
                attachments=e.data.attachments)
    await store.remember(e, turn, [])


async def test_conversations_and_turns_page_newest_first_and_stay_in_their_tenant(infra: Infra) -> None:
    async with service_pool(infra.database_url, "memory") as pool:
        store = PgTurnStore(pool)
        photo = Attachment(kind="image", name="a.png", content_type="image/png", size=3, ref="sha256:" + "0" * 64)
        thread = "thread/with/slashes"  # chat ids may hold '/': the key goes through as one path parameter
        first = message("acme", thread, "hello", (photo,))
        await remember(store, first)
        for i in range(4):
            await remember(store, message("acme", thread, f"more {i}"))
        await remember(store, message("acme", "other", "elsewhere"))
        await remember(store, message("globex", thread, "not acme's"))
        async with served(history_routes(PgHistory(pool))) as (url, client):
            memory = MemoryHistory(url, client)
            convs = await memory.conversations("acme", 50, None)
            assert [(c["conversation"], c["channel"], c["chat"], c["turns"]) for c in convs["items"]] == [
                ("acme/acme-hook/other", "acme-hook", "other", 1), (f"acme/acme-hook/{thread}", "acme-hook", thread, 5)]
            assert convs["next_before"] is None
            one = await memory.conversations("acme", 1, None)
            assert len(one["items"]) == 1 and one["next_before"]
            rest = await memory.conversations("acme", 1, one["next_before"])
            assert [c["chat"] for c in rest["items"]] == [thread] and rest["next_before"] is None

            key = f"acme/acme-hook/{thread}"
            page1 = await memory.turns("acme", key, 3, None)
            assert page1 is not None
            assert [t["text"] for t in page1["items"]] == ["more 3", "more 2", "more 1"]
            page2 = await memory.turns("acme", key, 3, page1["next_before"])
            assert page2 is not None and page2["next_before"] is None
            assert [t["text"] for t in page2["items"]] == ["more 0", "hello"]
            hello = page2["items"][-1]
            assert (hello["role"], hello["correlation_id"], hello["event_id"]) == (
                "user", str(first.correlation_id), str(first.id))
            assert hello["attachments"] == [photo.model_dump(mode="json", exclude_none=True)]
            # another tenant's key, and a key the tenant has not, are the same 404
            assert await memory.turns("globex", key, 3, None) is None
            assert await memory.turns("acme", "acme/acme-hook/nobody", 3, None) is None
            with pytest.raises(ReadRefused, match="before"):
                await memory.turns("acme", key, 3, "bm90LWEtbnVtYmVy")
            resp = await client.get(f"{url}/v1/conversations", params={"tenant": "acme", "limit": "501"})
            assert resp.status_code == 400 and "limit" in resp.json()["error"]
            resp = await client.get(f"{url}/v1/conversations", params={"tenant": "acme", "sql": "1"})
            assert resp.status_code == 400 and "unknown query parameter" in resp.json()["error"]
            assert (await client.get(f"{url}/v1/conversations")).status_code == 400  # tenant is required
        await store.aclose()


async def test_deliveries_are_listed_by_tenant_conversation_and_status(infra: Infra) -> None:
    async with service_pool(infra.database_url, "egress") as pool:
        ledger = PgDeliveryLedger(pool)
        replies = [reply_for(context(f"c{i}"), f"r{i}") for i in range(3)]
        await asyncio.gather(*(ledger.claim(r, f"acme:c{i}") for i, r in enumerate(replies)))
        await ledger.finish(replies[0], "acme:c0", Outcome("delivered", 1, 200, None, "pm0"),
                            [delivered(replies[0], "delivered")])
        async with served(delivery_routes(PgDeliveries(pool))) as (url, client):
            egress = EgressDeliveries(url, client)
            listed = await egress.deliveries("acme", 50, None, {})
            assert {d["reply_id"] for d in listed["items"]} == {str(r.id) for r in replies}
            [done] = (await egress.deliveries("acme", 50, None, {"status": "delivered"}))["items"]
            assert (done["reply_id"], done["platform_message_id"], done["conversation"], done["attempts"]) == (
                str(replies[0].id), "pm0", "acme/acme/c0", 1)
            assert done["correlation_id"] == str(replies[0].correlation_id) and done["finished_at"]
            by_conv = await egress.deliveries("acme", 50, None, {"conversation": "acme/acme/c2"})
            assert [d["reply_id"] for d in by_conv["items"]] == [str(replies[2].id)]
            assert (await egress.deliveries("globex", 50, None, {}))["items"] == []
            p1 = await egress.deliveries("acme", 2, None, {})
            p2 = await egress.deliveries("acme", 2, p1["next_before"], {})
            assert len(p1["items"]) == 2 and len(p2["items"]) == 1 and p2["next_before"] is None
            assert {d["reply_id"] for d in p1["items"] + p2["items"]} == {str(r.id) for r in replies}
            resp = await client.get(f"{url}/v1/deliveries", params={"tenant": "acme", "status": "lost"})
            assert resp.status_code == 400 and "status" in resp.json()["error"]
        await ledger.aclose()


async def test_inferences_show_model_tokens_latency_and_outcome(infra: Infra) -> None:
    async with service_pool(infra.database_url, "reasoner") as pool:
        ledger = Ledger(pool)
        ctx = context("c1")
        await ledger.record(record(ctx, [{"role": "user", "content": "hi"}], completion("hello"), []))
        async with served(inference_routes(PgInferences(pool))) as (url, client):
            reasoner = ReasonerInferences(url, client)
            [inf] = (await reasoner.inferences("acme", 50, None, {}))["items"]
            assert (inf["input_event_id"], inf["correlation_id"], inf["conversation"], inf["model"]) == (
                str(ctx.id), str(ctx.correlation_id), "acme/acme/c1", "m")
            assert (inf["prompt_tokens"], inf["completion_tokens"], inf["latency_ms"], inf["attempts"]) == (
                3, 4, 12.5, 2)
            assert (inf["models_tried"], inf["outcome"], inf["finish_reason"]) == (["first", "m"], "fallback", "stop")
            assert "request" not in inf and "output_text" not in inf  # what was said is the turns' to show
            by_corr = await reasoner.inferences("acme", 50, None, {"correlation": str(uuid.uuid4())})
            assert by_corr["items"] == []
            assert (await reasoner.inferences("globex", 50, None, {}))["items"] == []
        await ledger.aclose()


async def test_usage_is_aggregated_per_bucket_and_agent_in_the_tenant(infra: Infra) -> None:
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    async with service_pool(infra.database_url, "reasoner") as pool:
        ledger = Ledger(pool)
        latencies = (10.0, 20.0, 30.0)
        events = [context(f"u{i}") for i in range(3)]
        for e, ms in zip(events, latencies, strict=True):
            await ledger.record(record(e, [{"role": "user", "content": "q"}], replace(completion("a"), latency_ms=ms),
                                       []))
        hour = datetime(2026, 1, 1, 9, tzinfo=UTC)
        async with pool.connection() as conn:  # two answers at 09:xx, one an hour later by another agent
            for e, at, agent in zip(events, (hour + timedelta(minutes=5), hour + timedelta(minutes=50),
                                             hour + timedelta(hours=1, minutes=1)),
                                    ("assistant", "assistant", "helper"), strict=True):
                await conn.execute("UPDATE inferences SET created_at = %s, agent = %s WHERE input_event_id = %s",
                                   (at, agent, e.id))
        async with served(inference_routes(PgInferences(pool))) as (url, client):
            reasoner = ReasonerInferences(url, client)
            window = {"bucket": "hour", "since": hour.isoformat(), "until": (hour + timedelta(hours=3)).isoformat()}
            items = (await reasoner.usage("acme", window))["items"]
            got = [(i["start"][11:16], i["agent"], i["messages"], i["prompt_tokens"], i["completion_tokens"],
                    i["latency_ms_avg"]) for i in items]
            assert got == [("09:00", None, 2, 6, 8, 15.0), ("09:00", "assistant", 2, 6, 8, 15.0),
                           ("10:00", None, 1, 3, 4, 30.0), ("10:00", "helper", 1, 3, 4, 30.0)]
            assert items[0]["latency_ms_p95"] == 19.5  # interpolated over the bucket's answers
            helper = (await reasoner.usage("acme", {**window, "agent": "helper"}))["items"]
            assert [(i["start"][11:16], i["agent"]) for i in helper] == [("10:00", None), ("10:00", "helper")]
            day = (await reasoner.usage("acme", {**window, "bucket": "day"}))["items"]
            assert [(i["start"][:10], i["agent"], i["messages"]) for i in day] == [
                ("2026-01-01", None, 3), ("2026-01-01", "assistant", 2), ("2026-01-01", "helper", 1)]
            assert (await reasoner.usage("globex", window))["items"] == []
            for bad in ({"bucket": "week"}, {"since": "yesterday"}, {**window, "since": window["until"]}):
                try:
                    await reasoner.usage("acme", {**window, **bad})
                except ReadRefused as why:
                    assert str(why).split(":")[0] in ("bucket", "since"), why
                else:
                    raise AssertionError(f"accepted {bad}")
        await ledger.aclose()
