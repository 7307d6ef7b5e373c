"""Memory's adapters and its unit-test fakes implement the same ports, member by member: a drift on either
side fails here instead of letting handler tests pass against an interface the service no longer has."""

from __future__ import annotations

import pytest

from agentbus.services.memory.commandlog import PgCommandLog
from agentbus.services.memory.embeddings import OpenAIEmbedder
from agentbus.services.memory.inprocessvectors import InProcessVectorIndex
from agentbus.services.memory.knowledgestore import PgKnowledge, PgKnowledgeCatalogue
from agentbus.services.memory.pgvectorindex import PgvectorIndex
from agentbus.services.memory.ports import (
    CommandLog,
    Embedder,
    KnowledgeBase,
    KnowledgeCatalogue,
    TurnStore,
    VectorStore,
)
from agentbus.services.memory.qdrantknowledge import QdrantKnowledge
from agentbus.services.memory.store import PgTurnStore
from agentbus.services.memory.vectors import QdrantStore
from tests.support.ports import assert_implements
from tests.unit.fakes_memory import (
    FakeCommandLog,
    FakeEmbedder,
    FakeKnowledge,
    FakeKnowledgeCatalogue,
    FakeTurnStore,
    FakeVectors,
)


@pytest.mark.parametrize(
    ("impl", "port"),
    [
        (PgTurnStore, TurnStore),
        (InProcessVectorIndex, VectorStore),
        (PgvectorIndex, VectorStore),
        (QdrantStore, VectorStore),
        (OpenAIEmbedder, Embedder),
        (FakeTurnStore, TurnStore),
        (FakeVectors, VectorStore),
        (FakeEmbedder, Embedder),
        (PgCommandLog, CommandLog),
        (FakeCommandLog, CommandLog),
        (PgKnowledge, KnowledgeBase),
        (QdrantKnowledge, KnowledgeBase),
        (FakeKnowledge, KnowledgeBase),
        (PgKnowledgeCatalogue, KnowledgeCatalogue),
        (FakeKnowledgeCatalogue, KnowledgeCatalogue),
    ],
    ids=lambda c: c.__name__,
)
def test_implements_its_port(impl: type, port: type) -> None:
    assert_implements(impl, port)
