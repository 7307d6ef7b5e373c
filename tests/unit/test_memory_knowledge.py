"""Memory's side of the knowledge base with fakes: a part is stored once however often it comes, a removed
document is never stored again, recall merges the tenant's knowledge into every user's memories (whatever the
scope, within top k, never another tenant's, off per agent), the prompt attributes it; and Qdrant's store."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from agentbus.config import parse_config
from agentbus.documents import read_document
from agentbus.events import (
    Chat,
    ContextAssembledData,
    KnowledgeRequested,
    KnowledgeSource,
    MessageReceived,
    MessageReceivedData,
    Recall,
    Replay,
    Sender,
    Turn,
    utcnow,
)
from agentbus.knowledge import add_commands, remove_command
from agentbus.services.memory.handlers import Memory
from agentbus.services.memory.knowledge import PASSAGE, KnowledgeLoader
from agentbus.services.memory.ports import KnowledgeRow
from agentbus.services.memory.qdrantknowledge import QdrantKnowledge
from agentbus.services.reasoner.prompt import attribution, build_messages
from tests.support.platform import base_config
from tests.unit.fakes_memory import FakeEmbedder, FakeKnowledge, FakeKnowledgeCatalogue, FakeTurnStore, FakeVectors
from tests.unit.test_documents import HANDBOOK

LOADED = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def handbook(tenant: str = "acme") -> list[KnowledgeRequested]:
    return add_commands(tenant, read_document(HANDBOOK.encode(), "handbook.md"), "cli", source="cli", at=LOADED)


def loader() -> tuple[KnowledgeLoader, FakeEmbedder, FakeKnowledge, FakeKnowledgeCatalogue]:
    embedder, kb, catalogue = FakeEmbedder(), FakeKnowledge(), FakeKnowledgeCatalogue()
    return KnowledgeLoader(embedder, kb, catalogue), embedder, kb, catalogue


async def test_a_part_is_embedded_as_passages_and_stored_once_however_often_it_comes() -> None:
    load, embedder, kb, catalogue = loader()
    [part] = handbook()
    assert await load.apply(part) == []
    await load.apply(part)  # redelivered
    assert kb.writes == 1 and len(embedder.calls) == 1
    texts, kind = embedder.calls[0]
    assert kind == PASSAGE and texts[2].startswith("Employee Handbook › Leave › Parental leave\n")
    rows = sorted(kb.rows["acme"].values(), key=lambda r: r.position)
    assert [(r.title, r.section, r.loaded_at) for r in rows[:2]] == [
        ("Employee Handbook", None, LOADED), ("Employee Handbook", "Leave", LOADED)]
    [doc] = await catalogue.documents("acme")
    assert (doc.title, doc.chunks, doc.parts_loaded, doc.parts) == ("Employee Handbook", 4, 1, 1)


async def test_remove_deletes_every_chunk_and_a_late_part_is_not_stored_again() -> None:
    load, _, kb, catalogue = loader()
    text = "\n\n".join(f"Rule {i}: " + "keep the office tidy " * 80 for i in range(400))
    parts = add_commands("acme", read_document(text.encode(), "rules.txt"), "cli", source="cli")
    assert len(parts) > 1
    await load.apply(parts[0])
    await load.apply(handbook()[0])
    document = parts[0].data.document
    await load.apply(remove_command("acme", document, "cli", source="cli"))
    assert all(r.document != document for r in kb.rows["acme"].values())
    assert len(kb.rows["acme"]) == 4, "the other document stays"
    await load.apply(parts[1])  # a part that comes after the removal (redriven from the dead letters)
    assert all(r.document != document for r in kb.rows["acme"].values())
    assert [d.title for d in await catalogue.documents("acme")] == ["Employee Handbook"]


async def test_a_replayed_load_changes_nothing() -> None:
    load, embedder, kb, _ = loader()
    [part] = handbook()
    await load.apply(part.model_copy(update={"replay": Replay(run="r1")}))
    assert kb.rows == {} and embedder.calls == []


def message(tenant: str, sender: str, chat: str, text: str) -> MessageReceived:
    return MessageReceived.new(
        MessageReceivedData(channel=tenant, channel_type="webhook", agent="assistant", platform_message_id=text,
                            sender=Sender(id=sender, name=sender.title()), chat=Chat(id=chat), text=text,
                            received_at=utcnow()),
        source="ingress", tenant=tenant, conversation=f"{tenant}/{tenant}/{chat}")


def with_agent(knowledge: bool = True, scope: str = "user") -> Memory:
    doc = base_config()
    doc["agents"][0]["memory"] = {"history_turns": 10, "recall_top_k": 3, "recall_scope": scope,
                                  "knowledge": knowledge}
    return Memory(parse_config(doc), FakeTurnStore(), FakeEmbedder(), FakeVectors(), knowledge=FakeKnowledge())


async def store_handbook(m: Memory) -> None:
    assert isinstance(m.knowledge, FakeKnowledge)
    await KnowledgeLoader(m.embedder, m.knowledge, FakeKnowledgeCatalogue()).apply(handbook("acme")[0])


async def test_every_user_of_the_tenant_recalls_its_knowledge_within_top_k_and_no_other_tenant_does() -> None:
    for scope in ("user", "conversation"):
        m = with_agent(scope=scope)
        await store_handbook(m)
        await m.assemble_context(message("acme", "alice", "dm-a", "my own note about the parental leave"))
        [ctx] = await m.assemble_context(message("acme", "bob", "dm-b", "how long is parental leave?"))
        known = [r for r in ctx.data.memories if r.knowledge is not None]
        assert known and len(ctx.data.memories) <= 3, scope
        assert all(r.knowledge.title == "Employee Handbook" and r.knowledge.loaded_at == LOADED for r in known)
        assert all("my own note" not in r.text for r in ctx.data.memories), "alice's note is hers"
        scores = [r.score for r in ctx.data.memories]
        assert scores == sorted(scores, reverse=True), "merged by score"
        [other] = await m.assemble_context(message("globex", "carol", "dm-c", "how long is parental leave?"))
        assert other.data.memories == ()


async def test_an_agent_may_turn_the_knowledge_base_off() -> None:
    m = with_agent(knowledge=False)
    await store_handbook(m)
    [ctx] = await m.assemble_context(message("acme", "bob", "dm-b", "how long is parental leave?"))
    assert ctx.data.memories == ()


def test_the_prompt_attributes_knowledge_to_its_document_section_and_load_time() -> None:
    m = with_agent()
    assert isinstance(m.knowledge, FakeKnowledge)
    doc = uuid.uuid4()
    hit = Recall(text="Parents get 16 weeks.", score=0.9, role="system", at=LOADED,
                 knowledge=KnowledgeSource(document=doc, title="Employee Handbook", section="Leave › Parental leave",
                                           position=2, loaded_at=LOADED))
    assert attribution(hit) == "[knowledge: Employee Handbook › Leave › Parental leave, loaded 2026-12-01]"
    said = Recall(text="my locker is 12", score=0.8, at=LOADED, sender="u1", sender_name="Alice", chat_type="direct",
                  channel="acme")
    ctx = ContextAssembledData(agent="assistant", channel="acme", channel_type="webhook", chat=Chat(id="c"),
                               trigger="message", input=Turn(role="user", text="leave?", at=LOADED),
                               memories=(hit, said))
    agent = m.config.agent("assistant")
    assert agent is not None
    note = build_messages(agent, ctx)[1]["content"]
    assert note.startswith("Relevant memories from earlier conversations and the knowledge base:")
    assert "- [knowledge: Employee Handbook › Leave › Parental leave, loaded 2026-12-01] Parents get 16 weeks." \
        in note and "- [2026-12-01, Alice in a direct chat on acme] my locker is 12" in note
    old = Recall.model_validate({"text": "t", "score": 0.5})
    assert old.knowledge is None, "a recall without the field (an older event) still parses"


async def test_qdrant_keeps_each_tenants_knowledge_in_its_own_collection_and_removes_a_document_whole() -> None:
    from qdrant_client import AsyncQdrantClient

    client = AsyncQdrantClient(location=":memory:")
    kb = QdrantKnowledge(client, "test_kb", 2, payload_indexes=False)
    doc, other = uuid.uuid4(), uuid.uuid4()

    def row(d: uuid.UUID, i: int, vec: list[float]) -> KnowledgeRow:
        return KnowledgeRow(uuid.uuid4(), d, "Handbook", f"s{i}", i, f"chunk {i}", LOADED, vec)

    await kb.add("acme", [row(doc, 0, [1.0, 0.0]), row(doc, 1, [0.6, 0.8]), row(other, 0, [0.0, 1.0])])
    await kb.add("globex", [row(uuid.uuid4(), 0, [1.0, 0.0])])
    found = await kb.search("acme", [1.0, 0.0], 2)
    assert [(r.text, r.knowledge.section if r.knowledge else None) for r in found] == [
        ("chunk 0", "s0"), ("chunk 1", "s1")]
    assert found[0].knowledge is not None and found[0].knowledge.loaded_at == LOADED and found[0].score > 0.99
    assert await kb.remove("acme", doc) == 2
    assert [r.knowledge.document for r in await kb.search("acme", [1.0, 0.0], 5) if r.knowledge] == [other]
    assert len(await kb.search("globex", [1.0, 0.0], 5)) == 1
    assert await kb.search("initech", [1.0, 0.0], 5) == []
    await client.close()
