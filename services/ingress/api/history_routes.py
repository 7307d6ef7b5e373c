"""What happened in a tenant: its conversations, their turns and the memories made in them (memory),
deliveries (egress), inferences (the reasoner), and the trace of one message across every topic (the event
log).

Only reads, each from the service that owns the state (``history.py``); the API keeps none. Lists are
newest first, ``limit`` at a time; ``next_before`` is the cursor of the next page (pass it as ``before``).
A conversation is named by its whole key, ``tenant/channel/chat`` (chat ids may hold ``/`` too), so the
path ends ``/conversations/acme/webhook/room-1/turns``; a key of another tenant is a 404.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from agentbus.describe import summary
from agentbus.eventlog import Logged
from agentbus.services.ingress.api.app import Access, allow
from agentbus.services.ingress.api.config_routes import TenantPath
from agentbus.services.ingress.api.ports import Page, ReadRefused, Reads, ReadUnavailable

router = APIRouter(tags=["history"])
Limit = Annotated[int, Query(ge=1, le=500, description="at most this many, newest first")]
Before = Annotated[str | None, Query(max_length=512, pattern=r"^[A-Za-z0-9_-]+$",
                                     description="the `next_before` of the previous page")]
ConversationKey = Annotated[str, Field(min_length=5, max_length=600, pattern=r"^[^\x00-\x1f]+$")]
ConversationQuery = Annotated[str | None, Query(min_length=5, max_length=600, pattern=r"^[^\x00-\x1f]+$",
                                                description="a conversation key, tenant/channel/chat")]
MAX_WINDOW_H = 24 * 7


class ConversationOut(BaseModel):
    conversation: str = Field(description="the key: tenant/channel/chat")
    channel: str
    chat: str
    turns: int
    first_at: datetime
    last_at: datetime = Field(description="its last activity")


class AttachmentOut(BaseModel):
    kind: str
    name: str | None = None
    content_type: str | None = None
    size: int | None = None
    ref: str | None = Field(default=None, description="blob store reference")
    url: str | None = None
    transcript: str | None = None
    error: str | None = None


class TurnOut(BaseModel):
    event_id: str
    role: str
    sender: str | None
    text: str
    at: datetime
    correlation_id: str | None = Field(description="the message that started its chain (see /trace)")
    attachments: list[AttachmentOut]


class DeliveryOut(BaseModel):
    reply_id: str
    correlation_id: str
    conversation: str | None
    channel: str
    channel_type: str
    target: str
    status: str
    attempts: int
    http_status: int | None
    error: str | None
    platform_message_id: str | None
    claimed_at: datetime
    finished_at: datetime | None


class InferenceOut(BaseModel):
    input_event_id: str
    correlation_id: str
    conversation: str | None
    agent: str
    model: str
    provider: str
    models_tried: list[str]
    attempts: int
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None
    latency_ms: float
    outcome: str = Field(description="ok, fallback (an earlier model of the chain failed), or truncated")
    created_at: datetime


class MemoryOut(BaseModel):
    id: str = Field(description="the memory's id (the event it was made from; a fact: the command's)")
    text: str
    role: str
    kind: str = Field(description="turn (something said) or fact (something the agent was asked to remember)")
    at: datetime | None
    conversation: str | None
    sender: str | None
    sender_name: str | None
    channel: str | None
    chat: str | None
    chat_name: str | None
    chat_type: str | None


class MemoriesPage(BaseModel):
    items: list[MemoryOut]
    next_before: str | None = Field(description="always none: the newest `limit` are listed")


class ConversationsPage(BaseModel):
    items: list[ConversationOut]
    next_before: str | None


class TurnsPage(BaseModel):
    items: list[TurnOut]
    next_before: str | None


class DeliveriesPage(BaseModel):
    items: list[DeliveryOut]
    next_before: str | None


class InferencesPage(BaseModel):
    items: list[InferenceOut]
    next_before: str | None


class TraceEventOut(BaseModel):
    id: str
    type: str
    version: int
    source: str
    occurred_at: datetime
    conversation: str
    causation_id: str | None
    replay_run: str | None
    topic: str
    partition: int
    offset: int
    traceparent: str | None = Field(description="the W3C trace context it was published with")
    trace_id: str | None = Field(description="open it in Jaeger (or any OTLP trace viewer)")
    summary: str
    data: dict[str, Any]


class TraceOut(BaseModel):
    correlation_id: str
    trace_ids: list[str]
    since: datetime
    until: datetime
    events: list[TraceEventOut]


def _reads(access: Access) -> Reads:
    if access.deps.reads is None:
        raise HTTPException(503, "history reads are not configured on this ingress")
    return access.deps.reads


async def _answer(call: Any) -> Any:
    """A read's answer, its failures as the API's: 503 with the service's reason, or 422 for a refused cursor."""
    try:
        return await call
    except ReadUnavailable as exc:
        raise HTTPException(503, f"unavailable: {exc}") from None
    except ReadRefused as exc:
        raise RequestValidationError([{"loc": ("query", "before"), "msg": str(exc), "type": "value_error"}]) from None


def _filters(**given: str | uuid.UUID | None) -> dict[str, str]:
    return {k: str(v) for k, v in given.items() if v is not None}


def own_key(tenant: str, conversation: str) -> None:
    """A 404 for a key that is not a conversation key of the tenant: never ask about another tenant's."""
    parts = conversation.split("/", 2)
    if len(parts) != 3 or not all(parts) or parts[0] != tenant:
        raise HTTPException(404, f"no conversation {conversation[:200]!r}")


@router.get("/tenants/{tenant}/conversations", name="conversations.list", response_model=ConversationsPage)
async def conversations(tenant: TenantPath, access: Access = Depends(allow("viewer")), limit: Limit = 50,
                        before: Before = None) -> Page:
    page: Page = await _answer(_reads(access).history.conversations(tenant, limit, before))
    return page


@router.get("/tenants/{tenant}/conversations/{conversation:path}/turns", name="conversations.turns",
            response_model=TurnsPage)
async def turns(tenant: TenantPath,
                conversation: Annotated[str, Path(max_length=600, pattern=r"^[^\x00-\x1f]+$",
                                                  description="the conversation key, tenant/channel/chat")],
                access: Access = Depends(allow("viewer")), limit: Limit = 50, before: Before = None) -> Page:
    own_key(tenant, conversation)
    page: Page | None = await _answer(_reads(access).history.turns(tenant, conversation, limit, before))
    if page is None:
        raise HTTPException(404, f"no conversation {conversation[:200]!r}")
    return page


@router.get("/tenants/{tenant}/conversations/{conversation:path}/memories", name="conversations.memories",
            response_model=MemoriesPage,
            description="The memories made in the conversation (its turns and the facts told there), newest first: "
                        "what recall can bring back. Forget one with POST /tenants/{tenant}/memories/{id}/forget.")
async def memories(tenant: TenantPath,
                   conversation: Annotated[str, Path(max_length=600, pattern=r"^[^\x00-\x1f]+$",
                                                     description="the conversation key, tenant/channel/chat")],
                   access: Access = Depends(allow("viewer")), limit: Limit = 50) -> Page:
    own_key(tenant, conversation)
    page: Page = await _answer(_reads(access).history.memories(tenant, conversation, limit))
    return page


@router.get("/tenants/{tenant}/deliveries", name="deliveries.list", response_model=DeliveriesPage)
async def deliveries(tenant: TenantPath, access: Access = Depends(allow("viewer")), limit: Limit = 50,
                     before: Before = None, conversation: ConversationQuery = None,
                     status: Literal["pushing", "pending", "delivered", "failed", "suppressed"] | None = None,
                     correlation: uuid.UUID | None = Query(default=None, description="a correlation id")) -> Page:
    filters = _filters(conversation=conversation, status=status, correlation=correlation)
    page: Page = await _answer(_reads(access).deliveries.deliveries(tenant, limit, before, filters))
    return page


@router.get("/tenants/{tenant}/inferences", name="inferences.list", response_model=InferencesPage)
async def inferences(tenant: TenantPath, access: Access = Depends(allow("viewer")), limit: Limit = 50,
                     before: Before = None, conversation: ConversationQuery = None,
                     correlation: uuid.UUID | None = Query(default=None, description="a correlation id")) -> Page:
    filters = _filters(conversation=conversation, correlation=correlation)
    page: Page = await _answer(_reads(access).inferences.inferences(tenant, limit, before, filters))
    return page


def trace_event(lg: Logged) -> dict[str, Any]:
    e = lg.event
    return {"id": str(e.id), "type": e.TYPE, "version": e.version, "source": e.source, "occurred_at": e.occurred_at,
            "conversation": e.conversation, "causation_id": str(e.causation_id) if e.causation_id else None,
            "replay_run": e.replay.run if e.replay else None, "topic": lg.topic, "partition": lg.partition,
            "offset": lg.offset, "traceparent": lg.traceparent, "trace_id": lg.trace_id, "summary": summary(e),
            "data": e.data.model_dump(mode="json")}


@router.get("/tenants/{tenant}/messages/{correlation_id}/trace", name="messages.trace", response_model=TraceOut)
async def trace(tenant: TenantPath, correlation_id: uuid.UUID, access: Access = Depends(allow("viewer")),
                window_h: float = Query(default=24.0, gt=0, le=MAX_WINDOW_H,
                                        description="how far back from `until` to look, in hours"),
                until: datetime | None = Query(default=None, description="the window's end (default: now)")
                ) -> dict[str, Any]:
    end = until if until is None or until.tzinfo else until.replace(tzinfo=UTC)
    end = end or datetime.now(UTC)
    since = end - timedelta(hours=window_h)
    chain = await _answer(_reads(access).trace.trace(tenant, str(correlation_id), since, end))
    if not chain:
        raise HTTPException(404, f"no message {correlation_id} in the {window_h:g} h before {end.isoformat()}")
    events = [trace_event(lg) for lg in chain]
    return {"correlation_id": str(chain[0].event.correlation_id), "since": since, "until": end, "events": events,
            "trace_ids": sorted({lg.trace_id for lg in chain if lg.trace_id})}
