"""What ingress replicas see of their channels, through the real table they share: each replica's webhook
counters and long connection written by its writer, read back by the operator API's aggregation with the
replica holding the lease reporting the connection, and old rows going away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from agentbus.config import parse_config
from agentbus.services.ingress.api.channel_routes import FRESH_S, channel_state
from agentbus.services.ingress.channelstate import ChannelActivity, ChannelStateWriter, PgChannelStates
from tests.support.db import service_pool
from tests.support.platform import Infra

pytestmark = pytest.mark.integration
CONFIG = parse_config({
    "tenants": [{"id": "acme"}], "agents": [{"id": "assistant"}],
    "channels": [{"id": "hook", "type": "webhook", "tenant": "acme", "agent": "assistant",
                  "secret": {"env": "X", "default": "whsec_c2VjcmV0LWFjbWU="}},
                 {"id": "tg", "type": "telegram", "mode": "stream", "tenant": "acme", "agent": "assistant",
                  "bot_token": {"env": "Y", "default": "123:abc"}}],
})


@pytest.fixture
async def pool(infra: Infra) -> AsyncIterator[AsyncConnectionPool]:
    async with service_pool(infra.database_url, "ingress") as p:
        yield p


async def test_every_replicas_view_is_read_back_and_summed(pool: AsyncConnectionPool) -> None:
    store = PgChannelStates(pool)
    one, two = ChannelActivity(), ChannelActivity()
    one.hit("hook", 202, at=1_700_000_000.0)
    one.hit("hook", 401, "bad signature", at=1_700_000_001.0)
    two.hit("hook", 202, at=1_700_000_005.0)
    links: dict[str, Any] = {"tg": {"type": "telegram", "status": "down", "held_here": True, "holder": "r1",
                                    "reconnects": 3, "events": 0, "since": 1_700_000_002.0,
                                    "last_error": "ConnectError: refused"}}
    waiting: dict[str, Any] = {"tg": {"type": "telegram", "status": "held elsewhere", "held_here": False,
                                      "holder": "r1", "reconnects": 0, "events": 0}}
    await ChannelStateWriter(store, "r1", one, lambda: links, 1.0).views_written()
    await ChannelStateWriter(store, "r2", two, lambda: waiting, 1.0).views_written()
    rows = await store.states(["hook", "tg", "other"])
    assert sorted((r.channel, r.replica) for r in rows) == [("hook", "r1"), ("hook", "r2"), ("tg", "r1"),
                                                             ("tg", "r2")]
    assert all(0 <= r.age_s < FRESH_S for r in rows)
    hook, tg = CONFIG.channels
    state = channel_state(hook, [r for r in rows if r.channel == "hook"])
    w = state.webhook
    assert (w.hits, w.accepted, w.refused, w.failed, w.last_status) == (3, 2, 1, 0, 202)
    assert w.last_error == "401: bad signature" and w.last_at and w.last_at.timestamp() == 1_700_000_005.0
    assert state.connection is None and {v.replica for v in state.replicas} == {"r1", "r2"}
    conn = channel_state(tg, [r for r in rows if r.channel == "tg"]).connection
    assert conn is not None
    assert (conn.status, conn.holder, conn.last_error, conn.reconnects) == ("down", "r1", "ConnectError: refused", 3)

    links["tg"] = {**links["tg"], "status": "connected", "last_error": None}  # the holder's next round
    await ChannelStateWriter(store, "r1", one, lambda: links, 1.0).views_written()
    conn = channel_state(tg, [r for r in await store.states(["tg"]) if r.channel == "tg"]).connection
    assert conn is not None and conn.status == "connected"
    async with pool.connection() as c:  # a replica gone for a day: its rows are dropped by the next write
        await c.execute("UPDATE channel_states SET updated_at = now() - interval '2 days' WHERE replica = 'r2'")
    await ChannelStateWriter(store, "r1", one, lambda: links, 1.0).views_written()
    assert {r.replica for r in await store.states(["hook", "tg"])} == {"r1"}


async def test_the_writer_keeps_writing_every_interval(pool: AsyncConnectionPool) -> None:
    activity = ChannelActivity()
    writer = ChannelStateWriter(PgChannelStates(pool), "r9", activity, dict, 0.05)
    task = asyncio.create_task(writer.run())
    try:
        activity.hit("hook", 202)
        for _ in range(100):
            rows = await PgChannelStates(pool).states(["hook"])
            if rows and rows[0].view["webhook"]["hits"] == 1:
                break
            await asyncio.sleep(0.05)
        activity.hit("hook", 503, "temporarily unable")
        for _ in range(100):
            rows = await PgChannelStates(pool).states(["hook"])
            if rows and rows[0].view["webhook"]["hits"] == 2:
                break
            await asyncio.sleep(0.05)
        assert rows[0].view["webhook"]["failed"] == 1 and rows[0].view["webhook"]["last_error"].startswith("503")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
