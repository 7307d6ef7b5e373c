"""When the embeddings server is away: answer from history at once, and index the turn's vector later.

Before this, a failing embeddings call failed the handler, and the consumer retried the event with backoff for
up to fifteen minutes while the conversation (its partition key) waited. Recall is a help, not the answer: a
turn whose text cannot be embedded now is answered with its history only (``agentbus_recall_skipped_total``
counts it), and its vector is put off in ``deferred_vectors``; ``outage.index_deferred`` makes it once the
server answers again. After a failure the gate stays shut for ``pause_s``, so the turns that follow do not each
wait for a connection timeout: they skip at once, and the deferred indexer probes for the way back.

A refusal (4xx: the server will never embed this text) is not an outage: the turn is answered without recall
and its vector is skipped for good, not deferred.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog

from agentbus.bus.errors import PermanentError
from agentbus.metrics import RECALL_SKIPPED, child
from agentbus.services.memory.ports import Embedder

log = structlog.get_logger("agentbus.memory")
KIND = "query"  # E5 prefix for symmetric similarity: turns are matched against turns


@dataclass
class EmbeddingsGate:
    """Shut for ``pause_s`` after a failed call; the deferred indexer's success opens it again."""

    pause_s: float = 30.0
    _shut_until: float = 0.0

    @property
    def open(self) -> bool:
        return time.monotonic() >= self._shut_until

    def failed(self) -> None:
        self._shut_until = time.monotonic() + self.pause_s

    def recovered(self) -> None:
        self._shut_until = 0.0


@dataclass(frozen=True)
class Embedding:
    """A turn's vector, or why there is none: ``deferred`` asks for it to be made later."""

    vector: list[float] | None
    skipped: str | None = None

    @property
    def deferred(self) -> bool:
        return self.skipped == "embeddings_unavailable"


async def embed_or_skip(embedder: Embedder, gate: EmbeddingsGate, text: str) -> Embedding:
    """One text's vector, or a counted skip when the server is away (or the gate is shut after it was)."""
    if not gate.open:
        child(RECALL_SKIPPED, "embeddings_unavailable").inc()
        return Embedding(None, "embeddings_unavailable")
    try:
        [vector] = await embedder.embed([text], KIND)
    except PermanentError as exc:
        child(RECALL_SKIPPED, "embeddings_rejected").inc()
        log.warning("recall_skipped", reason="embeddings_rejected", error=str(exc)[:300])
        return Embedding(None, "embeddings_rejected")
    except Exception as exc:  # refused connection, timeout, 5xx, a garbled answer: the server is not serving
        gate.failed()
        child(RECALL_SKIPPED, "embeddings_unavailable").inc()
        log.warning("recall_skipped", reason="embeddings_unavailable", error=f"{type(exc).__name__}: {exc}"[:300],
                    pause_s=gate.pause_s)
        return Embedding(None, "embeddings_unavailable")
    return Embedding(vector)


