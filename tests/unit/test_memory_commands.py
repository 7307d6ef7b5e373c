"""memory.requested with fakes: a fact is remembered once, a forget deletes only what is alike above the
threshold and only in the command's tenant, and neither a replay nor a redelivery changes anything."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pytest

from agentbus.bus import PermanentError
from agentbus.events import MemoryCommand, MemoryRequested, Replay
from agentbus.services.memory.commands import MemoryCommands
from tests.unit.fakes_memory import FakeCommandLog, FakeVectors

LOCKER = [1.0, 0.0, 0.0]
NEAR_LOCKER = [0.96, 0.28, 0.0]  # cosine 0.96 with LOCKER
LOOSELY_LOCKER = [0.6, 0.8, 0.0]  # cosine 0.6: alike, but not the same fact
OFFSITE = [0.0, 0.0, 1.0]


@dataclass
class KeyedEmbedder:
    """Each text's vector is chosen by the test, so the similarities are known."""

    vectors: dict[str, list[float]]

    async def embed(self, texts: Sequence[str], kind: str) -> list[list[float]]:
        return [self.vectors[t] for t in texts]


EMBEDDER = KeyedEmbedder({
    "my locker is 12": LOCKER, "locker 12 is on level 2": NEAR_LOCKER, "lockers are cleaned on Fridays": LOOSELY_LOCKER,
    "the offsite is in May": OFFSITE, "my locker": LOCKER,
})


def command(action: Literal["remember", "forget"], text: str, tenant: str = "acme",
            min_score: float = 0.85) -> MemoryRequested:
    return MemoryRequested.new(MemoryCommand(action=action, text=text, subject="u1", min_score=min_score),
                               source="reasoner", tenant=tenant, conversation=f"{tenant}/{tenant}/c1")


def commands() -> tuple[MemoryCommands, FakeVectors, FakeCommandLog]:
    vectors, log = FakeVectors(), FakeCommandLog()
    return MemoryCommands(EMBEDDER, vectors, log), vectors, log


async def test_remember_keeps_the_fact_under_the_command_id_once() -> None:
    m, vectors, log = commands()
    cmd = command("remember", "my locker is 12")
    assert await m.apply(cmd) == []
    assert await m.apply(cmd) == []  # a redelivery
    [(pid, point)] = vectors.points.items()
    assert pid == cmd.id
    assert (point.text, point.kind, point.subject, point.tenant, point.role) == (
        "my locker is 12", "fact", "u1", "acme", "user")
    assert log.applied_commands == {cmd.id: []}


async def test_forget_deletes_what_is_alike_above_the_threshold_in_the_tenant_only() -> None:
    m, vectors, log = commands()
    facts = [command("remember", t) for t in ("my locker is 12", "locker 12 is on level 2",
                                              "lockers are cleaned on Fridays", "the offsite is in May")]
    globex = command("remember", "my locker is 12", tenant="globex")
    for c in (*facts, globex):
        await m.apply(c)
    forget = command("forget", "my locker")
    await m.apply(forget)
    assert sorted(p.text for p in vectors.points.values() if p.tenant == "acme") == [
        "lockers are cleaned on Fridays", "the offsite is in May"]
    assert [p.text for p in vectors.points.values() if p.tenant == "globex"] == ["my locker is 12"]
    assert sorted(log.applied_commands[forget.id]) == sorted([facts[0].id, facts[1].id])


async def test_a_lower_threshold_forgets_more() -> None:
    m, vectors, _ = commands()
    for t in ("my locker is 12", "lockers are cleaned on Fridays", "the offsite is in May"):
        await m.apply(command("remember", t))
    await m.apply(command("forget", "my locker", min_score=0.5))
    assert [p.text for p in vectors.points.values()] == ["the offsite is in May"]


async def test_a_redelivered_forget_changes_nothing_and_keeps_its_first_record() -> None:
    m, vectors, log = commands()
    await m.apply(command("remember", "my locker is 12"))
    forget = command("forget", "my locker")
    await m.apply(forget)
    later = command("remember", "my locker is 12")  # told again after the forget
    await m.apply(later)
    await m.apply(forget)
    assert list(vectors.points) == [later.id]
    assert len(log.applied_commands[forget.id]) == 1


async def test_a_forgotten_fact_is_not_brought_back_by_its_remember_redelivered() -> None:
    m, vectors, _ = commands()
    remember = command("remember", "my locker is 12")
    await m.apply(remember)
    await m.apply(command("forget", "my locker"))
    await m.apply(remember)
    assert vectors.points == {}


async def test_replayed_commands_change_nothing() -> None:
    m, vectors, log = commands()
    live = command("remember", "my locker is 12")
    await m.apply(live)
    shadow_forget = command("forget", "my locker").model_copy(update={"replay": Replay(run="run-1")})
    shadow_remember = command("remember", "the offsite is in May").model_copy(update={"replay": Replay(run="run-1")})
    assert await m.apply(shadow_forget) == [] and await m.apply(shadow_remember) == []
    assert [p.text for p in vectors.points.values()] == ["my locker is 12"]
    assert list(log.applied_commands) == [live.id]


async def test_without_semantic_memory_a_command_is_refused_loudly() -> None:
    log = FakeCommandLog()
    with pytest.raises(PermanentError, match="semantic memory is off"):
        await MemoryCommands(None, None, log).apply(command("remember", "my locker is 12"))
    assert log.applied_commands == {}


async def test_forget_by_id_deletes_that_memory_only_in_the_commands_tenant_and_embeds_nothing() -> None:
    calls: list[str] = []

    class CountingEmbedder(KeyedEmbedder):
        async def embed(self, texts: Sequence[str], kind: str) -> list[list[float]]:
            calls.extend(texts)
            return await super().embed(texts, kind)

    vectors, log = FakeVectors(), FakeCommandLog()
    m = MemoryCommands(CountingEmbedder(EMBEDDER.vectors), vectors, log)
    locker, near = command("remember", "my locker is 12"), command("remember", "locker 12 is on level 2")
    for c in (locker, near):
        await m.apply(c)
    calls.clear()

    def forget_one(tenant: str) -> MemoryRequested:
        cmd = MemoryCommand(action="forget", text=f"memory {locker.id}", memory_id=locker.id, min_score=1.0,
                            requested_by="token:abc")
        return MemoryRequested.new(cmd, source="ingress", tenant=tenant, conversation=f"{tenant}/{tenant}/c1")

    other = forget_one("globex")  # another tenant's command cannot reach acme's memory
    await m.apply(other)
    assert set(vectors.points) == {locker.id, near.id} and log.applied_commands[other.id] == []
    forget = forget_one("acme")
    await m.apply(forget)
    await m.apply(forget)  # a redelivery
    assert list(vectors.points) == [near.id]  # the similar memory stays
    assert log.applied_commands[forget.id] == [locker.id] and calls == []
