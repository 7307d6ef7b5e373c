"""The ``knowledge.requested`` commands of a document: what the operator API and the command line publish.

A document goes on the bus already chunked, in parts no larger than ``PART_BYTES`` of text (the broker's
messages are a few MiB at most), each part an event whose id is derived from the document and the part, all
keyed ``<tenant>/knowledge/<document>`` so that memory applies them in order and a removal comes after them.
Removing a document is one command whose id is derived from the document: asking twice is one command.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from agentbus.documents import Document
from agentbus.events import KnowledgeChunk, KnowledgeCommand, KnowledgeRequested
from agentbus.ids import derive_id

PART_BYTES = 256 * 1024  # UTF-8 bytes of chunk text per event at most
PART_CHUNKS = 200
MAX_CHUNKS = 5000  # a document of more chunks (about 6 MB of text) is refused: load it in pieces
MAX_DOCUMENT_BYTES = 10 * 1024 * 1024  # the file's size at most


def knowledge_key(tenant: str, document: uuid.UUID) -> str:
    return f"{tenant}/knowledge/{document}"


def _parts(doc: Document) -> list[list[KnowledgeChunk]]:
    parts: list[list[KnowledgeChunk]] = [[]]
    size = 0
    for c in doc.chunks:
        n = len(c.text.encode()) + len((c.section or "").encode())
        if parts[-1] and (size + n > PART_BYTES or len(parts[-1]) >= PART_CHUNKS):
            parts.append([])
            size = 0
        parts[-1].append(KnowledgeChunk(position=c.position, section=c.section, text=c.text))
        size += n
    return parts


def add_commands(tenant: str, doc: Document, requested_by: str, source: str, name: str | None = None,
                 document: uuid.UUID | None = None, at: datetime | None = None) -> list[KnowledgeRequested]:
    """The events that load ``doc`` for ``tenant`` (a new document id unless one is given)."""
    document = document or uuid.uuid4()
    loaded_at = at or datetime.now(UTC)
    parts = _parts(doc)
    return [
        KnowledgeRequested.new(
            KnowledgeCommand(action="add", document=document, title=doc.title, source=name,
                             content_type=doc.content_type, part=i, parts=len(parts), chunks=tuple(chunks),
                             loaded_at=loaded_at, requested_by=requested_by),
            source=source, tenant=tenant, conversation=knowledge_key(tenant, document),
            id=derive_id(document, f"knowledge:add:{i}"))
        for i, chunks in enumerate(parts)
    ]


def remove_command(tenant: str, document: uuid.UUID, requested_by: str, source: str) -> KnowledgeRequested:
    return KnowledgeRequested.new(
        KnowledgeCommand(action="remove", document=document, requested_by=requested_by),
        source=source, tenant=tenant, conversation=knowledge_key(tenant, document),
        id=derive_id(document, f"knowledge:remove:{tenant}"))
