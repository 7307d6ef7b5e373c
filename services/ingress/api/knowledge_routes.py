"""The tenant's knowledge base: documents an operator loads for every user of the tenant (Markdown, plain text or
PDF), listed and removed. A write is ``knowledge.requested`` commands through the bus (memory embeds and stores
the chunks; the API keeps nothing), published with its audit event.

An upload is the file itself as the body (``Content-Type`` its type, ``?name=`` its file name), read up to
``MAX_DOCUMENT_BYTES`` and refused beyond (413), of another type (415), unreadable or without text (422), before
anything is published. It is chunked here, so the events that carry it stay small.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from agentbus.documents import DocumentError, read_document
from agentbus.knowledge import MAX_CHUNKS, MAX_DOCUMENT_BYTES, add_commands, remove_command
from agentbus.services.ingress.api.app import Access, allow
from agentbus.services.ingress.api.config_routes import TenantPath
from agentbus.services.ingress.api.history_routes import _answer
from agentbus.services.ingress.api.ports import KnowledgeReader

router = APIRouter(tags=["knowledge"])
DocumentPath = Annotated[uuid.UUID, Path(description="a document's id, as GET .../knowledge lists it")]
_TYPES = ("text/markdown", "text/plain", "application/pdf")


class Loading(BaseModel):
    document_id: str
    title: str
    chunks: int = Field(description="the chunks the document was cut into")
    parts: int = Field(description="the knowledge.requested commands that carry them")
    command_ids: list[str]


class DocumentOut(BaseModel):
    id: str
    title: str
    source: str | None = None
    content_type: str | None = None
    parts: int
    parts_loaded: int = Field(description="parts memory has stored (equal to parts once loaded)")
    chunks: int
    loaded_at: str | None = None
    requested_by: str
    removed_at: str | None = None


class Removing(BaseModel):
    document_id: str
    command_id: str = Field(description="the knowledge.requested command (the same however often it is asked)")


def _knowledge(access: Access) -> KnowledgeReader:
    reads = access.deps.reads
    if reads is None or reads.knowledge is None:
        raise HTTPException(503, "knowledge reads are not configured on this ingress")
    return reads.knowledge


async def _body(request: Request) -> bytes:
    """The body, at most ``MAX_DOCUMENT_BYTES`` (a larger one is refused before it is read whole)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_DOCUMENT_BYTES:
        raise HTTPException(413, f"the document is larger than {MAX_DOCUMENT_BYTES} bytes")
    data = bytearray()
    async for piece in request.stream():
        data += piece
        if len(data) > MAX_DOCUMENT_BYTES:
            raise HTTPException(413, f"the document is larger than {MAX_DOCUMENT_BYTES} bytes")
    return bytes(data)


@router.post("/tenants/{tenant}/knowledge", name="knowledge.add", status_code=202, response_model=Loading,
             openapi_extra={"requestBody": {"required": True, "description": "the document's bytes", "content": {
                 t: {"schema": {"type": "string", "format": "binary"}} for t in _TYPES}}},
             responses={413: {"description": "larger than the limit"}, 415: {"description": "not Markdown, "
                        "plain text or PDF"}},
             description="Load a document (the body; Content-Type text/markdown, text/plain or application/pdf) "
                         "into the tenant's knowledge base, recalled for every user of the tenant. It is chunked "
                         "here and stored by memory a moment after the 202 (knowledge.requested commands). "
                         "Audited as knowledge.add.")
async def add_document(tenant: TenantPath, request: Request,
                       name: Annotated[str | None, Query(max_length=300, pattern=r"^[^\x00-\x1f/\\]+$",
                                                         description="the file name (its type, if the "
                                                         "Content-Type does not say it)")] = None,
                       title: Annotated[str | None, Query(min_length=1, max_length=300, pattern=r"^[^\x00-\x1f]+$",
                                                          description="the title (default: its first heading, "
                                                          "its PDF title, or its file name)")] = None,
                       access: Access = Depends(allow("operator"))) -> Loading:
    data = await _body(request)
    if not data.strip():
        raise HTTPException(422, "the document is empty")
    try:
        doc = await asyncio.to_thread(read_document, data, name, request.headers.get("content-type"), title)
    except DocumentError as why:
        raise HTTPException(why.status, str(why)) from None
    if len(doc.chunks) > MAX_CHUNKS:
        raise HTTPException(413, f"the document makes {len(doc.chunks)} chunks, more than {MAX_CHUNKS}: load it in "
                            "smaller files")
    events = add_commands(tenant, doc, access.who.actor, source="ingress", name=name)
    document = events[0].data.document
    await access.publish(events, target=str(document), detail=f"{doc.title} ({len(doc.chunks)} chunks)"[:300])
    return Loading(document_id=str(document), title=doc.title, chunks=len(doc.chunks), parts=len(events),
                   command_ids=[str(e.id) for e in events])


@router.get("/tenants/{tenant}/knowledge", name="knowledge.list", response_model=list[DocumentOut],
            description="The documents of the tenant's knowledge base, newest first.")
async def list_documents(tenant: TenantPath, access: Access = Depends(allow("viewer"))) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await _answer(_knowledge(access).documents(tenant))
    return found


@router.delete("/tenants/{tenant}/knowledge/{document_id}", name="knowledge.remove", status_code=202,
               response_model=Removing,
               description="Remove a document: memory deletes every chunk of it, a moment after the 202 (a "
                           "knowledge.requested command). Audited as knowledge.remove.")
async def remove_document(tenant: TenantPath, document_id: DocumentPath,
                          access: Access = Depends(allow("operator"))) -> Removing:
    docs = await _answer(_knowledge(access).documents(tenant))
    found = next((d for d in docs if d.get("id") == str(document_id)), None)
    if found is None:
        raise HTTPException(404, f"no document {str(document_id)!r} (never loaded, or removed already)")
    event = remove_command(tenant, document_id, access.who.actor, source="ingress")
    await access.publish([event], target=str(document_id), detail=str(found.get("title", ""))[:300])
    return Removing(document_id=str(document_id), command_id=str(event.id))
