"""The supervisor of a long connection: one holder per channel, take-over, reconnects, never silently down.

Leases and time are fakes the test moves (``FakeLeases.now`` is the clock of both), so an expiry or a give-up
is a state the test reaches by advancing time, not by waiting for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from agentbus.channeltypes.telegram import TelegramChannel
from agentbus.services.ingress.channels.telegram import TelegramInbound
from agentbus.services.ingress.longconn.base import LinkState, LongConnection
from agentbus.services.ingress.longconn.supervisor import Supervisor, backoff, describe
from tests.unit.fakes_ingress import FakeLeases

TTL = 9.0


def channel() -> TelegramChannel:
    return TelegramChannel.model_validate({
        "id": "tg", "type": "telegram", "tenant": "acme", "agent": "assistant", "mode": "stream",
        "bot_token": {"env": "UNSET_TG", "default": "1:x"},
    })


class Scripted(LongConnection):
    """A session per ``run``: each takes the next step of ``script`` ("up" stays connected until cancelled,
    an exception is raised after connecting, "refuse" raises before connecting)."""

    type = "telegram"

    def __init__(self, script: list[Any]) -> None:
        ch = channel()
        super().__init__(ch, TelegramInbound(ch), self._never, None, LinkState())  # type: ignore[arg-type]
        self.script = script
        self.runs = 0
        self.cancelled = 0

    @staticmethod
    async def _never(_: Any) -> Any:
        raise AssertionError("not used")

    async def run(self) -> None:
        step = self.script[min(self.runs, len(self.script) - 1)]
        self.runs += 1
        if step == "refuse":
            raise ConnectionRefusedError("gateway refused the session")
        self.state.up()
        if isinstance(step, Exception):
            raise step
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


def supervisor(leases: FakeLeases, holder: str, conn: Scripted) -> Supervisor:
    async def sleep(seconds: float) -> None:
        leases.now += seconds / 4  # two loops sleep at once: the clock moves with both
        await asyncio.sleep(0.001)

    return Supervisor(conn, leases, holder, TTL, reconnect_max_s=8.0, sleep=sleep, clock=lambda: leases.now)


async def until(cond: Callable[[], bool], steps: int = 5000) -> None:
    for _ in range(steps):
        if cond():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition not reached")


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_one_replica_holds_the_connection_and_the_other_waits() -> None:
    leases = FakeLeases()
    a_conn, b_conn = Scripted(["up"]), Scripted(["up"])
    a = asyncio.create_task(supervisor(leases, "a", a_conn).run())
    await until(lambda: a_conn.state.connected)
    b = asyncio.create_task(supervisor(leases, "b", b_conn).run())
    await until(lambda: b_conn.state.holder == "a")
    for _ in range(50):
        await asyncio.sleep(0.002)
    assert b_conn.runs == 0 and not b_conn.state.held and a_conn.state.held
    assert describe(b_conn.state, "telegram")["status"] == "held elsewhere"
    assert describe(a_conn.state, "telegram")["status"] == "connected"
    # a stops gracefully: it releases the lease and b takes the connection over without waiting for expiry
    expires = leases.rows["tg"][1]
    await stop(a)
    assert a_conn.cancelled == 1 and not a_conn.state.held
    assert leases.rows["tg"][1] < leases.now < expires  # released: free now, before it would have expired
    await until(lambda: b_conn.state.connected)
    assert leases.takes == [("tg", "a"), ("tg", "b")]
    await stop(b)


async def test_a_dead_holders_lease_is_taken_over_once_it_expires() -> None:
    leases = FakeLeases(rows={"tg": ("dead-replica", 9.0)})
    conn = Scripted(["up"])
    task = asyncio.create_task(supervisor(leases, "b", conn).run())
    await until(lambda: conn.state.holder == "dead-replica")
    assert conn.runs == 0
    await until(lambda: conn.state.connected)
    assert leases.now >= 9.0 and leases.rows["tg"][0] == "b"
    await stop(task)


async def test_a_dropped_session_reconnects_with_backoff_and_shows_why() -> None:
    leases = FakeLeases()
    conn = Scripted([RuntimeError("socket closed by the gateway"), "refuse", "refuse", "up"])
    sup = supervisor(leases, "a", conn)
    task = asyncio.create_task(sup.run())
    await until(lambda: conn.runs == 4 and conn.state.connected)
    assert conn.state.reconnects == 3
    await stop(task)


async def test_a_connection_that_stays_down_is_visible() -> None:
    leases = FakeLeases()
    conn = Scripted(["refuse"])
    task = asyncio.create_task(supervisor(leases, "a", conn).run())
    await until(lambda: conn.runs >= 3)
    d = describe(conn.state, "telegram")
    assert d["status"] == "down" and d["held_here"] and "gateway refused" in d["last_error"]
    assert d["reconnects"] >= 2
    await stop(task)


async def test_a_lease_taken_by_another_replica_ends_the_session() -> None:
    leases = FakeLeases()
    conn = Scripted(["up"])
    task = asyncio.create_task(supervisor(leases, "a", conn).run())
    await until(lambda: conn.state.connected)
    leases.rows["tg"] = ("b", leases.now + 1000)  # as if a's renewals had been lost and b took over
    await until(lambda: conn.cancelled == 1)
    assert not conn.state.held and not conn.state.connected and conn.state.holder == "b"
    await stop(task)


async def test_a_holder_that_cannot_renew_closes_before_its_lease_can_expire() -> None:
    leases = FakeLeases()
    conn = Scripted(["up"])
    task = asyncio.create_task(supervisor(leases, "a", conn).run())
    await until(lambda: conn.state.connected)
    expires = leases.rows["tg"][1]
    leases.down = True
    await until(lambda: conn.cancelled == 1)
    assert leases.now <= expires, "the session outlived the lease"
    assert not conn.state.held
    await stop(task)


@pytest.mark.parametrize("attempt", range(12))
def test_backoff_grows_to_its_cap_with_jitter(attempt: int) -> None:
    lo, hi = backoff(attempt, 30.0, rng=lambda: 0.0), backoff(attempt, 30.0, rng=lambda: 1.0)
    assert lo == hi / 2 and hi == min(30.0, 0.5 * 2 ** attempt)
