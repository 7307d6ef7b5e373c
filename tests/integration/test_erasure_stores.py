"""Forgetting a person in each service's stores, against the real PostgreSQL: memory's turns (with the replies
to them, also rows from before owners were kept), vectors (gone from another replica's index too, and never
written again) and deferred turns; the reasoner's inferences and steps that carry their words; the data key
deleted. Another person's rows stay, and a redelivered command is answered from its record."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from psycopg_pool import AsyncConnectionPool

from agentbus.erasure import erasure_requested
from agentbus.events import (
    Chat,
    ContextAssembled,
    ContextAssembledData,
    MessageReceived,
    MessageReceivedData,
    Recall,
    Sender,
    Turn,
    UserErased,
    utcnow,
)
from agentbus.sealing import FORGOTTEN, Keyring
from agentbus.sealing.keystore import PgKeyStore, open_key_store
from agentbus.services.memory.deferredstore import PgDeferredIndex
from agentbus.services.memory.erasure import MemoryErasure
from agentbus.services.memory.inprocessvectors import InProcessVectorIndex
from agentbus.services.memory.ports import Deferred, Origin, Scope
from agentbus.services.memory.store import PgTurnStore
from agentbus.services.reasoner.erasure import ReasonerErasure
from agentbus.services.reasoner.ledger import Ledger
from agentbus.services.reasoner.ports import Completion, Record, StepRecord
from agentbus.services.reasoner.summaries import folded
from agentbus.services.reasoner.summarystore import PgSummaries
from agentbus.settings import Settings
from tests.support.db import service_pool
from tests.support.platform import Infra

pytestmark = pytest.mark.integration
SECRET = "my locker code is 4417 zebra-quartz"
DIM = 4


@pytest.fixture
async def keys(infra: Infra, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[PgKeyStore]:
    monkeypatch.setenv("AGENTBUS_DB_SCHEMA_SUFFIX", f"_t{uuid.uuid4().hex[:8]}")
    store, pool = await open_key_store(Settings(database_url=infra.database_url))
    yield store
    async with pool.connection() as conn:
        await conn.execute(f'DROP SCHEMA "keyring{os.environ["AGENTBUS_DB_SCHEMA_SUFFIX"]}" CASCADE')
    await pool.close()


@pytest.fixture
async def memory_pool(infra: Infra) -> AsyncIterator[AsyncConnectionPool]:
    async with service_pool(infra.database_url, "memory") as p:
        yield p


@pytest.fixture
async def reasoner_pool(infra: Infra) -> AsyncIterator[AsyncConnectionPool]:
    async with service_pool(infra.database_url, "reasoner") as p:
        yield p


def message(user: str, text: str, chat: str = "team") -> MessageReceived:
    return MessageReceived.new(
        MessageReceivedData(channel="acme-hook", channel_type="webhook", agent="assistant",
                            platform_message_id=uuid.uuid4().hex, sender=Sender(id=user),
                            chat=Chat(id=chat, type="group"), text=text, received_at=utcnow()),
        source="ingress", tenant="acme", conversation=f"acme/acme-hook/{chat}")


async def count(pool: AsyncConnectionPool, sql: str) -> int:
    async with pool.connection() as conn:
        row = await (await conn.execute(sql)).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return int(row[0])


async def test_memory_forgets_a_persons_turns_vectors_and_deferred_turns(
        memory_pool: AsyncConnectionPool, keys: PgKeyStore) -> None:
    store = PgTurnStore(memory_pool)
    vectors = InProcessVectorIndex(memory_pool, DIM, refresh_s=0.0)
    replica = InProcessVectorIndex(memory_pool, DIM, refresh_s=0.0)
    deferred = PgDeferredIndex(memory_pool)
    at = utcnow()
    mine, theirs = message("u1", SECRET), message("u2", "the weather is fine")
    for m, owner in ((mine, "u1"), (theirs, "u2")):
        await store.remember(m, Turn(role="user", text=m.data.text, at=at, sender=owner, owner=owner), [])
        reply = m.follow(MessageReceived, m.data, source="reasoner", step="reply")  # any event id of the chain
        await store.remember(reply, Turn(role="assistant", text=f"you said: {m.data.text}", at=at, sender="assistant",
                                         owner=owner), [])
    # rows from before owners were kept: a turn of u1 and the reply to it (same correlation id)
    old = message("u1", f"old: {SECRET}")
    async with memory_pool.connection() as conn:
        for eid, role, sender, text in ((old.id, "user", "u1", old.data.text),
                                        (uuid.uuid4(), "assistant", "assistant", f"old reply: {SECRET}")):
            await conn.execute(
                "INSERT INTO turns (event_id, tenant, conversation, role, sender, text, at, correlation_id) "
                "VALUES (%s, 'acme', %s, %s, %s, %s, %s, %s)", (eid, old.conversation, role, sender, text, at, old.id))
    ids = {name: uuid.uuid4() for name in ("mine", "reply", "fact", "theirs", "unowned")}
    for name, origin, kind, subject in (
            ("mine", Origin(owner="u1", sender="u1"), "turn", None),
            ("reply", Origin(owner="u1", sender="assistant"), "turn", None),
            ("fact", Origin(owner="u1", sender="u1"), "fact", "u1"),
            ("theirs", Origin(owner="u2", sender="u2"), "turn", None),
            ("unowned", Origin(sender="u1"), "turn", None)):
        await vectors.upsert(ids[name], [1.0, 0.0, 0.0, 0.0], Scope("acme"), mine.conversation,
                             "user" if name != "reply" else "assistant",
                             "the weather is fine" if name == "theirs" else f"{name}: {SECRET}", at, kind=kind,
                             subject=subject, origin=origin)
    assert len(await replica.search([1.0, 0.0, 0.0, 0.0], Scope("acme"), 10)) == 5  # the replica has them loaded
    await deferred.defer(Deferred(uuid.uuid4(), "acme", mine.conversation, "user", SECRET, at, Origin(owner="u1")))
    await deferred.defer(Deferred(uuid.uuid4(), "acme", mine.conversation, "user", "kept", at, Origin(owner="u2")))
    ring = Keyring(keys)
    sealed = await ring.seal_text("acme", "u1", SECRET, "x")
    kept = await ring.seal_text("acme", "u2", "kept", "y")

    command = erasure_requested("acme", "u1", "cli", source="cli")
    eraser = MemoryErasure(memory_pool, ring, vectors)
    [answer] = await eraser.erase(command)
    assert isinstance(answer, UserErased) and answer.causation_id == command.id
    assert answer.data.deleted == {"turns": 4, "vectors": 4, "deferred_vectors": 1} and answer.data.keys_deleted == 1
    assert (answer.data.user, answer.data.service, answer.data.requested_by) == ("u1", "memory", "cli")
    assert await count(memory_pool, "SELECT count(*) FROM turns WHERE text LIKE '%4417%'") == 0
    assert await count(memory_pool, "SELECT count(*) FROM turns") == 2
    assert await count(memory_pool, "SELECT count(*) FROM vectors WHERE text LIKE '%4417%'") == 0
    assert await count(memory_pool, "SELECT count(*) FROM deferred_vectors WHERE text LIKE '%4417%'") == 0
    assert [t.text for t in await store.history(theirs.conversation, 10)] == [
        "the weather is fine", "you said: the weather is fine"]
    found = await replica.search([1.0, 0.0, 0.0, 0.0], Scope("acme"), 10)
    assert [r.event_id for r in found] == [ids["theirs"]]  # gone from the other replica's index as well
    await replica.upsert(ids["mine"], [1.0, 0.0, 0.0, 0.0], Scope("acme"), mine.conversation, "user", SECRET, at,
                         origin=Origin(owner="u1"))  # a redelivered turn does not bring it back
    assert await count(memory_pool, "SELECT count(*) FROM vectors WHERE text LIKE '%4417%'") == 0
    assert await ring.open_text(sealed) == FORGOTTEN and await ring.open_text(kept) == "kept"

    assert await eraser.erase(command) == [answer]  # redelivered: answered from the record
    assert await count(memory_pool, "SELECT count(*) FROM turns") == 2
    await store.aclose()
    await vectors.aclose()
    await replica.aclose()


def context(user: str, history: tuple[Turn, ...] = (), memories: tuple[Recall, ...] = ()) -> ContextAssembled:
    now = utcnow()
    return ContextAssembled.new(
        ContextAssembledData(agent="assistant", channel="acme-hook", channel_type="webhook", chat=Chat(id="team"),
                             trigger="message", input=Turn(role="user", text=f"question of {user}", at=now,
                                                           owner=user),
                             history=history, memories=memories, asker=Sender(id=user)),
        source="memory", tenant="acme", conversation="acme/acme-hook/team")


async def test_the_reasoner_forgets_every_inference_and_step_with_a_persons_words(
        reasoner_pool: AsyncConnectionPool, keys: PgKeyStore) -> None:
    ledger = Ledger(reasoner_pool)
    earlier = utcnow() - timedelta(minutes=1)
    own = context("u1")
    # u2 asks in the group where u1 spoke: u1's turn is in the prompt; and u3's question recalled a memory of u1
    heard = context("u2", history=(Turn(role="user", text=SECRET, at=earlier, owner="u1"),))
    recalled = context("u3", memories=(Recall(text=SECRET, score=0.9, owner="u1"),))
    other = context("u2")
    c = Completion(text=f"echo: {SECRET}", model="m", provider="p", latency_ms=1.0)
    for ctx in (own, heard, recalled, other):
        await ledger.record(Record(event=ctx, agent="assistant", request=[{"role": "user", "content": SECRET}],
                                   completion=c, outputs=[]))
        await ledger.record_step(ctx, StepRecord(n=1, call_id="", kind="llm", data={"text": SECRET}))
    summaries = PgSummaries(reasoner_pool)  # a group's running summary holding u1's words, and one without
    group = [Turn(role="user", text=SECRET, at=earlier, owner="u1"), Turn(role="user", text="hi", at=earlier,
                                                                           owner="u2")]
    await summaries.save("acme", "acme/acme-hook/team", "assistant", folded(None, group, f"u1 said {SECRET}"))
    await summaries.save("acme", "acme/acme-hook/other", "assistant", folded(None, group[1:], "u2 said hi"))
    eraser = ReasonerErasure(reasoner_pool, Keyring(keys))
    command = erasure_requested("acme", "u1", "token:abc", source="ingress")
    [answer] = await eraser.erase(command)
    assert isinstance(answer, UserErased)
    assert answer.data.deleted == {"inferences": 3, "steps": 3, "summaries": 1} and answer.data.service == "reasoner"
    assert await summaries.get("acme/acme-hook/team") is None
    assert (await summaries.get("acme/acme-hook/other")) is not None
    async with reasoner_pool.connection() as conn:
        left = [r[0] for r in await (await conn.execute("SELECT input_event_id FROM inferences")).fetchall()]
        steps = [r[0] for r in await (await conn.execute("SELECT input_event_id FROM steps")).fetchall()]
    assert left == [other.id] and steps == [other.id]
    assert await eraser.erase(command) == [answer]
    elsewhere = erasure_requested("globex", "u2", "cli", source="cli")  # another tenant's u2: not acme's
    [none] = await eraser.erase(elsewhere)
    assert isinstance(none, UserErased) and none.data.deleted == {"inferences": 0, "steps": 0, "summaries": 0}
    assert none.data.keys_deleted == 0
    await ledger.aclose()
