"""Memory's handler of ``knowledge.requested``: store a part of a document in the tenant's knowledge base, or
remove a document with every chunk of it.

A part's chunks are embedded as passages (E5's side for what is searched; a turn's recall searches with its
query vector) with the document's title and the chunk's section in front, as that is what a question names,
and stored under ids derived from the document and the chunk's position. The catalogue is read first and
written last, with the processed record in the same transaction: a redelivery after it stores nothing; one
before it (chunks stored, record not yet written) stores the same ids again, which changes nothing. A
document once removed is never stored again: a part redelivered after the removal is recorded and dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from agentbus.bus import PermanentError
from agentbus.config import PlatformConfig
from agentbus.documents import SECTION_SEP
from agentbus.events import Event, KnowledgeRequested
from agentbus.ids import derive_id
from agentbus.pii import embeddable
from agentbus.replaying import effects_of
from agentbus.services.memory.ports import Embedder, KnowledgeBase, KnowledgeCatalogue, KnowledgeRow

log = structlog.get_logger("agentbus.memory")
PASSAGE = "passage"  # E5's prefix for the texts searched
EMBED_BATCH = 32  # chunks per embeddings request


@dataclass
class KnowledgeLoader:
    embedder: Embedder | None
    knowledge: KnowledgeBase | None
    catalogue: KnowledgeCatalogue
    config: PlatformConfig | None = None  # whose tenants mask personal data before it is embedded

    async def apply(self, event: KnowledgeRequested) -> Sequence[Event]:
        """knowledge.requested → chunks stored, or a document's chunks removed (no output)."""
        cmd = event.data
        if not effects_of(event).remember:  # a shadow run must not change what live conversations recall
            log.info("knowledge_not_applied", action=cmd.action, reason="replayed")
            return []
        if await self.catalogue.applied(event):
            log.info("knowledge_not_applied", action=cmd.action, reason="applied before")
            return []
        if self.embedder is None or self.knowledge is None:  # dead-lettered: redrive it once memory is on
            raise PermanentError("semantic memory is off (no embeddings endpoint configured)")
        if cmd.action == "remove":
            gone = await self.knowledge.remove(event.tenant, cmd.document)
            await self.catalogue.record(event, gone)
            log.info("knowledge_removed", document=str(cmd.document), chunks=gone, requested_by=cmd.requested_by)
            return []
        if await self.catalogue.removed(event.tenant, cmd.document):
            await self.catalogue.record(event, 0)
            log.info("knowledge_not_applied", action="add", reason="document removed", document=str(cmd.document))
            return []
        if cmd.loaded_at is None:
            raise PermanentError("knowledge.requested add without loaded_at")
        rows: list[KnowledgeRow] = []
        for start in range(0, len(cmd.chunks), EMBED_BATCH):
            batch = cmd.chunks[start:start + EMBED_BATCH]
            texts = [embeddable(self.config, event.tenant, SECTION_SEP.join(x for x in (cmd.title, c.section) if x)
                                + "\n" + c.text) for c in batch]
            vectors = await self.embedder.embed(texts, PASSAGE)
            rows += [KnowledgeRow(id=derive_id(cmd.document, f"knowledge:chunk:{c.position}"), document=cmd.document,
                                  title=cmd.title, section=c.section, position=c.position, text=c.text,
                                  loaded_at=cmd.loaded_at, vector=v) for c, v in zip(batch, vectors, strict=True)]
        await self.knowledge.add(event.tenant, rows)
        await self.catalogue.record(event, len(rows))
        log.info("knowledge_stored", document=str(cmd.document), part=cmd.part, parts=cmd.parts, chunks=len(rows),
                 requested_by=cmd.requested_by)
        return []
