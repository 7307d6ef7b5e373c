"""Memory's admin HTTP: ``POST /v1/recall``, the semantic search behind the agent's ``memory`` tool, and the
memories the operator API shows (``GET /v1/conversations/{key}/memories``, ``GET /v1/memories/{id}``).

Read-only, so it may be served over HTTP (writes are ``memory.requested`` commands on the bus). Recall
searches what context assembly recalls from: the same embeddings, the same vector store, the same scope.
With ``agent``, ``sender`` and ``conversation`` (what the agent's tool sends) the scope is the agent's
``memory.recall_scope`` for that person; without them (an operator's query) the whole tenant. The listings
are tenant-scoped like memory's history: another tenant's key or id is a 404, as if it did not exist.
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agentbus.adminreads import BadQuery, limit_of, query_of
from agentbus.config import PlatformConfig
from agentbus.events import Recall
from agentbus.http import error
from agentbus.pii import embeddable
from agentbus.services.memory.ports import Embedder, KnowledgeCatalogue, KnowledgeDocument, Scope, VectorStore
from agentbus.services.memory.recallgate import KIND

log = structlog.get_logger("agentbus.memory")
MAX_BODY = 64 * 1024


class RecallQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    text: str = Field(min_length=1, max_length=4000)
    limit: int = Field(default=5, ge=1, le=50)
    agent: str | None = Field(default=None, max_length=63, description="search as this agent recalls")
    sender: str | None = Field(default=None, max_length=256, description="the person asking")
    conversation: str | None = Field(default=None, max_length=512, description="where they ask")
    group: bool = Field(default=False, description="they ask in a group chat")

    def scope(self, config: PlatformConfig) -> Scope | str:
        """The scope to search, or why the query cannot be answered."""
        if self.agent is None:
            return Scope(tenant=self.tenant)
        agent = config.agent(self.agent)
        if agent is None:
            return f"unknown agent {self.agent!r}"
        mode = agent.memory.recall_scope
        if mode != "tenant" and self.conversation is None:
            return "conversation is required for this agent's recall scope"
        return Scope.within(self.tenant, mode, self.conversation or "", self.sender, self.group)

def match_json(r: Recall) -> dict[str, Any]:
    out: dict[str, Any] = {"text": r.text, "role": r.role, "kind": r.kind,
                           "at": r.at.isoformat() if r.at else None,
                           "score": round(r.score, 4), "conversation": r.conversation, "sender": r.sender,
                           "sender_name": r.sender_name, "channel": r.channel, "chat": r.chat,
                           "chat_name": r.chat_name, "chat_type": r.chat_type}
    if r.knowledge is not None:
        out["knowledge"] = r.knowledge.model_dump(mode="json")
    return out


def _reason(err: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in err.errors())


def recall_routes(config: PlatformConfig, embedder: Embedder | None, vectors: VectorStore | None) -> list[BaseRoute]:
    tenants = {t.id for t in config.tenants}

    async def recall(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return error(413, f"body larger than {MAX_BODY} bytes")
        try:
            query = RecallQuery.model_validate_json(body)
        except ValidationError as err:
            if any(e["type"] == "json_invalid" for e in err.errors()):
                return error(400, "body is not valid JSON")
            return error(422, _reason(err))
        if query.tenant not in tenants:
            return error(404, f"unknown tenant {query.tenant!r}")
        scope = query.scope(config)
        if isinstance(scope, str):
            return error(422, scope)
        if embedder is None or vectors is None:
            return error(503, "semantic memory is off (no embeddings endpoint configured)")
        try:
            [vector] = await embedder.embed([embeddable(config, query.tenant, query.text)], KIND)
            found = await vectors.search(vector, scope, query.limit)
        except Exception as exc:  # the embeddings server or the vector store is away: say so, the caller retries
            log.warning("recall_failed", tenant=query.tenant, error=f"{type(exc).__name__}: {exc}"[:300])
            return error(503, f"memory search unavailable: {type(exc).__name__}")
        return JSONResponse({"matches": [match_json(r) for r in found]})

    return [Route("/v1/recall", recall, methods=["POST"])]


def memory_json(r: Recall) -> dict[str, Any]:
    out = match_json(r)
    out.pop("score")
    return {"id": str(r.event_id), **out}


def memory_routes(vectors: VectorStore | None) -> list[BaseRoute]:
    """The memories made in a conversation (newest first) and one memory by id, for the operator API."""

    async def conversation_memories(request: Request) -> Response:
        conversation: str = request.path_params["conversation"]
        try:
            q = query_of(request, ("tenant", "limit"))
            limit = limit_of(q)
        except BadQuery as why:
            return error(400, str(why))
        if not conversation.startswith(q["tenant"] + "/"):
            return error(404, f"no conversation {conversation[:200]!r} of tenant {q['tenant'][:64]!r}")
        if vectors is None:
            return error(503, "semantic memory is off (no embeddings endpoint configured)")
        found = await vectors.memories(q["tenant"], conversation, limit)
        return JSONResponse({"items": [memory_json(r) for r in found], "next_before": None})

    async def one_memory(request: Request) -> Response:
        try:
            q = query_of(request, ("tenant",))
            memory_id = uuid.UUID(request.path_params["memory_id"])
        except BadQuery as why:
            return error(400, str(why))
        except ValueError:
            return error(400, "memory id: not a UUID")
        if vectors is None:
            return error(503, "semantic memory is off (no embeddings endpoint configured)")
        found = await vectors.find(q["tenant"], [memory_id])
        if not found:
            return error(404, f"no memory {str(memory_id)!r} of tenant {q['tenant'][:64]!r}")
        return JSONResponse({"items": [memory_json(found[0])], "next_before": None})

    return [Route("/v1/conversations/{conversation:path}/memories", conversation_memories, methods=["GET"]),
            Route("/v1/memories/{memory_id}", one_memory, methods=["GET"])]


def document_json(d: KnowledgeDocument) -> dict[str, Any]:
    return {"id": str(d.id), "title": d.title, "source": d.source, "content_type": d.content_type,
            "parts": d.parts, "parts_loaded": d.parts_loaded, "chunks": d.chunks,
            "loaded_at": d.loaded_at.isoformat() if d.loaded_at else None, "requested_by": d.requested_by,
            "removed_at": d.removed_at.isoformat() if d.removed_at else None}


def knowledge_routes(catalogue: KnowledgeCatalogue) -> list[BaseRoute]:
    """The documents of a tenant's knowledge base (newest first; ``removed=true`` lists removed ones too)."""

    async def documents(request: Request) -> Response:
        try:
            q = query_of(request, ("tenant", "removed"))
        except BadQuery as why:
            return error(400, str(why))
        if q.get("removed", "false") not in ("true", "false"):
            return error(400, "removed: true or false")
        found = await catalogue.documents(q["tenant"], removed=q.get("removed") == "true")
        return JSONResponse({"items": [document_json(d) for d in found], "next_before": None})

    return [Route("/v1/knowledge", documents, methods=["GET"])]
