"""The background side of an embeddings outage: index the turns whose vector was put off (see ``recallgate``)."""

from __future__ import annotations

import asyncio

import structlog

from agentbus.bus.errors import PermanentError
from agentbus.config import PlatformConfig
from agentbus.metrics import VECTORS_DEFERRED, child
from agentbus.pii import embeddable
from agentbus.services.memory.ports import DeferredIndex, Embedder, Scope, VectorStore
from agentbus.services.memory.recallgate import KIND, EmbeddingsGate

log = structlog.get_logger("agentbus.memory")


async def index_deferred(embedder: Embedder, vectors: VectorStore, deferred: DeferredIndex, gate: EmbeddingsGate,
                         batch: int = 64, config: PlatformConfig | None = None) -> int:
    """Index one batch of deferred turns; returns how many (0: none waiting, or the server is still away).
    With ``config``, the texts of tenants that mask personal data are embedded masked."""
    items = await deferred.take(batch)
    if not items:
        return 0
    texts = [embeddable(config, d.tenant, d.text) for d in items]
    try:
        made: list[list[float] | None] = list(await embedder.embed(texts, KIND))
    except PermanentError:  # one text the server refuses must not hold back the others: one at a time
        made = [await _one(embedder, t) for t in texts]
    except Exception as exc:  # still away (or answering garbage): the rows wait
        gate.failed()
        await deferred.release([d.point_id for d in items])
        log.info("deferred_vectors_waiting", count=len(items), error=type(exc).__name__)
        return 0
    gate.recovered()
    await asyncio.gather(*(vectors.upsert(d.point_id, v, Scope(d.tenant), d.conversation, d.role, d.text, d.at,
                                          origin=d.origin) for d, v in zip(items, made, strict=True) if v is not None))
    await deferred.done([d.point_id for d in items])
    indexed = sum(v is not None for v in made)
    child(VECTORS_DEFERRED, "indexed").inc(indexed)
    if indexed < len(items):
        child(VECTORS_DEFERRED, "refused").inc(len(items) - indexed)
    log.info("deferred_vectors_indexed", count=indexed, refused=len(items) - indexed)
    return len(items)


async def _one(embedder: Embedder, text: str) -> list[float] | None:
    """A text's vector, or None when the server refuses it (an outage still raises)."""
    try:
        [vector] = await embedder.embed([text], KIND)
    except PermanentError:
        return None
    return vector


async def keep_indexing_deferred(embedder: Embedder, vectors: VectorStore, deferred: DeferredIndex,
                                 gate: EmbeddingsGate, every_s: float = 5.0,
                                 config: PlatformConfig | None = None) -> None:
    """The background task: drain the deferred turns whenever there are some and the server answers.
    A failure of the store is logged and tried again on the next round (nothing is lost: the rows stay)."""
    while True:
        try:
            while await index_deferred(embedder, vectors, deferred, gate, config=config):
                pass
        except Exception as exc:  # the database or the vector store is away: the rows wait for the next round
            log.warning("deferred_indexing_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        await asyncio.sleep(every_s)
