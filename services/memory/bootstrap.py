"""Wiring of memory: database, embeddings client, vector store, and the topic → handler table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from psycopg_pool import AsyncConnectionPool

from agentbus.bus import Producer
from agentbus.config import PlatformConfig
from agentbus.db import service_database
from agentbus.events import (
    JobTriggered,
    KnowledgeRequested,
    MemoryRequested,
    MessageReceived,
    ReplyGenerated,
    UserErasureRequested,
)
from agentbus.retention import Table, pruner
from agentbus.service import ServiceParts, keyring_of
from agentbus.services.memory.commandlog import PgCommandLog
from agentbus.services.memory.commands import MemoryCommands
from agentbus.services.memory.deferredstore import PgDeferredIndex
from agentbus.services.memory.embeddings import OpenAIEmbedder
from agentbus.services.memory.erasure import MemoryErasure
from agentbus.services.memory.handlers import Memory
from agentbus.services.memory.history import PgHistory, history_routes
from agentbus.services.memory.inprocessvectors import InProcessVectorIndex
from agentbus.services.memory.knowledge import KnowledgeLoader
from agentbus.services.memory.knowledgestore import PgKnowledge, PgKnowledgeCatalogue
from agentbus.services.memory.outage import keep_indexing_deferred
from agentbus.services.memory.pgvectorindex import PgvectorIndex, pgvector_available
from agentbus.services.memory.ports import Embedder, KnowledgeBase, VectorStore
from agentbus.services.memory.recallgate import EmbeddingsGate
from agentbus.services.memory.routes import knowledge_routes, memory_routes, recall_routes
from agentbus.services.memory.store import PgTurnStore
from agentbus.settings import Settings

if TYPE_CHECKING:
    from agentbus.services.memory.vectors import QdrantStore

log = structlog.get_logger()


async def bootstrap(settings: Settings, config: PlatformConfig, producer: Producer) -> ServiceParts:
    pool, database = await service_database(settings, "memory", Path(__file__).parent / "migrations")
    embedder: Embedder | None = None
    vectors: VectorStore | None = None
    knowledge: KnowledgeBase | None = None
    on_stop: list[Callable[[], Awaitable[None]]] = []
    if settings.embeddings_url:
        key = settings.embeddings_api_key.get_secret_value() if settings.embeddings_api_key else None
        client = OpenAIEmbedder(settings.embeddings_url, settings.embeddings_model, key,
                                settings.embeddings_timeout_s)
        index = await _vector_index(settings, pool)
        knowledge = await _knowledge_base(settings, pool, index)
        on_stop += [client.aclose, index.aclose]
        embedder, vectors = client, index
    keys = keyring_of(producer)
    store = PgTurnStore(pool, keyring=keys)
    on_stop += [store.aclose, pool.close]  # the pool last: the index and the store flush through it
    deferred = PgDeferredIndex(pool)
    memory = Memory(config, store, embedder, vectors, deferred, EmbeddingsGate(settings.embeddings_pause_s),
                    knowledge=knowledge)
    catalogue = PgKnowledgeCatalogue(pool)
    commands = MemoryCommands(embedder, vectors, PgCommandLog(pool), config)
    background = [pruner(pool, "memory", retained_tables(vectors), config, settings).run]
    if embedder is not None and vectors is not None:
        em, vs = embedder, vectors
        background.append(lambda: keep_indexing_deferred(em, vs, deferred, memory.gate,
                                                         settings.embeddings_retry_s, config))

    return ServiceParts(
        routes={
            MessageReceived: memory.assemble_context,
            JobTriggered: memory.assemble_context,
            ReplyGenerated: memory.remember_reply,
            MemoryRequested: commands.apply,
            UserErasureRequested: MemoryErasure(pool, keys, vectors).erase,
            KnowledgeRequested: KnowledgeLoader(embedder, knowledge, catalogue, config).apply,
        },
        http_routes=[*recall_routes(config, embedder, vectors), *history_routes(PgHistory(pool)),
                     *memory_routes(vectors), *knowledge_routes(catalogue)],
        checks={"database": database},
        on_stop=on_stop,
        background=background,
    )


def retained_tables(vectors: VectorStore | None) -> list[Table]:
    """What memory prunes: turns past their tenant's retention with their vectors (deleted first, so a pass cut
    short deletes them again), turns still waiting for a vector, and (always) processed records past the
    pruning horizon."""
    forget = None if vectors is None else vectors.delete
    return [Table("turns", "at", "turns", key="event_id", before_delete=forget),
            Table("deferred_vectors", "at", "turns")]


async def _vector_index(settings: Settings,
                        pool: AsyncConnectionPool) -> QdrantStore | PgvectorIndex | InProcessVectorIndex:
    """Qdrant when one is configured, else memory's own schema: searched by pgvector where the server has it
    (or ``vector_index`` says so), else in process. Ready to use: its tables, column and index checked."""
    if settings.qdrant_url or settings.qdrant_path:
        # imported only when used: qdrant-client and what it pulls in add about 50 MB to the process
        from agentbus.services.memory.vectors import QdrantStore

        qkey = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        qdrant = QdrantStore.connect(settings.qdrant_url, str(settings.qdrant_path) if settings.qdrant_path else None,
                                     qkey, settings.qdrant_collection, settings.embeddings_dim)
        await qdrant.ensure()
        return qdrant
    if settings.vector_index == "pgvector" or (settings.vector_index == "auto" and await pgvector_available(pool)):
        hnsw = PgvectorIndex(pool, settings.embeddings_dim)
        await hnsw.ensure()  # raises PgvectorUnavailable with the reason
        log.info("vector_index", kind="pgvector")
        return hnsw
    in_process = InProcessVectorIndex(pool, settings.embeddings_dim, settings.vectors_max_per_tenant)
    await in_process.ensure()
    log.info("vector_index", kind="in_process", max_per_tenant=settings.vectors_max_per_tenant)
    return in_process


async def _knowledge_base(settings: Settings, pool: AsyncConnectionPool,
                          index: QdrantStore | PgvectorIndex | InProcessVectorIndex) -> KnowledgeBase:
    """The tenant's knowledge base where its memories are: Qdrant's collections beside them, or memory's own
    table searched as the memories are (pgvector or in process)."""
    if not isinstance(index, (PgvectorIndex, InProcessVectorIndex)):
        from agentbus.services.memory.qdrantknowledge import QdrantKnowledge

        return QdrantKnowledge(index.client, settings.qdrant_collection, settings.embeddings_dim,
                               payload_indexes=index.payload_indexes)
    kb = PgKnowledge(pool, settings.embeddings_dim, pgvector=isinstance(index, PgvectorIndex))
    await kb.ensure()
    log.info("knowledge_index", kind=kb.searched_by)
    return kb
