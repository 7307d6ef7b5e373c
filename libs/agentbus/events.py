"""The event catalogue: one envelope, typed payloads, one class per (type, version).

Events are immutable facts (past tense) or commands (imperative). Output ids are derived from the causing
event so that a redelivered input produces byte-identical outputs, which downstream consumers then ignore.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

ID_NAMESPACE = uuid.UUID("6f1c2b1e-5d0a-4c8e-9a57-2b7f0e4d9c31")


def derive_id(cause: uuid.UUID | str, step: str) -> uuid.UUID:
    """A deterministic id for the output `step` of the event `cause`."""
    return uuid.uuid5(ID_NAMESPACE, f"{cause}:{step}")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Frozen(BaseModel):
    """Events are immutable; unknown fields are ignored (a tolerant reader), so a producer may add an
    optional field within a version while consumers that do not know it yet keep working."""

    model_config = ConfigDict(frozen=True, extra="ignore")


# ---------------------------------------------------------------- payloads


class Sender(Frozen):
    id: str
    name: str | None = None
    is_bot: bool = False


class Chat(Frozen):
    id: str
    type: Literal["direct", "group"] = "direct"
    name: str | None = None


class MessageReceivedData(Frozen):
    channel: str = Field(description="channel instance id from agentbus.yaml")
    channel_type: str
    agent: str
    platform_message_id: str
    sender: Sender
    chat: Chat
    text: str
    mentions: tuple[str, ...] = ()
    mentioned_bot: bool = False
    reply_route: dict[str, Any] = Field(default_factory=dict, description="adapter-specific reply address")
    received_at: datetime
    refusal: str | None = Field(
        default=None,
        description="set by ingress when the sender is not served (allowlist): answered with this text, "
        "no LLM call, not remembered",
    )


class Schedule(Frozen):
    kind: Literal["cron", "at", "every"]
    expr: str = Field(description="cron expression, ISO-8601 instant, or seconds between runs")
    timezone: str = "UTC"


class CreateJob(Frozen):
    """Command: create (or replace) a scheduled job."""

    job_id: str
    action: Literal["create", "delete"] = "create"
    schedule: Schedule | None = None
    agent: str | None = None
    channel: str | None = None
    chat: Chat | None = None
    prompt: str | None = None
    reply_route: dict[str, Any] = Field(default_factory=dict)
    requested_by: str = "api"


class JobTriggeredData(Frozen):
    job_id: str
    due_at: datetime
    agent: str
    channel: str
    chat: Chat
    prompt: str
    reply_route: dict[str, Any] = Field(default_factory=dict)


class Turn(Frozen):
    role: Literal["user", "assistant", "system"]
    text: str
    at: datetime
    event_id: uuid.UUID | None = None
    sender: str | None = None


class Recall(Frozen):
    text: str
    score: float
    role: Literal["user", "assistant", "system"] = "user"
    at: datetime | None = None
    conversation: str | None = None


class ContextAssembledData(Frozen):
    agent: str
    channel: str
    channel_type: str
    chat: Chat
    trigger: Literal["message", "job"]
    input: Turn
    history: tuple[Turn, ...] = ()
    memories: tuple[Recall, ...] = ()
    reply_route: dict[str, Any] = Field(default_factory=dict)
    in_reply_to: str | None = None
    refusal: str | None = Field(default=None, description="answer with this text, without the LLM")


class InferenceCompletedData(Frozen):
    agent: str
    model: str
    provider: str
    models_tried: tuple[str, ...] = ()
    attempts: int = 1
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    latency_ms: float = 0.0
    reused: bool = Field(default=False, description="answer taken from the inference ledger, no LLM call")
    outcome: Literal["ok", "failed"] = "ok"
    error: str | None = None
    output_text: str | None = None


class Usage(Frozen):
    """Token counts, named as the OpenTelemetry GenAI conventions name them."""

    input_tokens: int | None = None
    output_tokens: int | None = None


class InferenceCompletedDataV2(Frozen):
    """v2: token counts move into ``usage`` (input/output, GenAI naming) — a breaking rename, hence v2."""

    agent: str
    model: str
    provider: str
    models_tried: tuple[str, ...] = ()
    attempts: int = 1
    usage: Usage = Usage()
    finish_reason: str | None = None
    latency_ms: float = 0.0
    reused: bool = Field(default=False, description="answer taken from the inference ledger, no LLM call")
    outcome: Literal["ok", "failed"] = "ok"
    error: str | None = None
    output_text: str | None = None


class ReplyGeneratedData(Frozen):
    agent: str
    channel: str
    channel_type: str
    chat: Chat
    text: str
    format: Literal["text", "markdown"] = "text"
    model: str
    reply_route: dict[str, Any] = Field(default_factory=dict)
    in_reply_to: str | None = None


class DeliveryCompletedData(Frozen):
    reply_id: uuid.UUID
    channel: str
    channel_type: str
    status: Literal["delivered", "failed", "suppressed"]
    attempts: int = 0
    http_status: int | None = None
    error: str | None = None
    platform_message_id: str | None = None
    latency_ms: float = 0.0


class DeadLetteredData(Frozen):
    service: str
    original_topic: str
    original_partition: int
    original_offset: int
    original_key: str | None = None
    original_headers: dict[str, str] = Field(default_factory=dict)
    original_value: str = Field(description="the original record value, as UTF-8 (or base64 if binary)")
    original_type: str | None = None
    original_id: str | None = None
    error: str
    error_type: str
    attempts: int


# ---------------------------------------------------------------- envelope


class Replay(Frozen):
    """Marks an event of a shadow run. Replayed events keep the ids of the events they replay, so each
    replayed output can be put beside its live original; consumers key their de-duplication on (id, run)."""

    run: str = Field(min_length=1, max_length=64)
    rerun_llm: bool = False
    model: str | None = None
    system_prompt: str | None = None


class Event(Frozen):
    """Envelope shared by every event; subclasses pin `type`, `version` and `data`."""

    TYPE: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1

    id: uuid.UUID
    type: str
    version: int
    source: str
    occurred_at: datetime
    tenant: str
    conversation: str = Field(description="partition key: tenant/channel/chat")
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    replay: Replay | None = None
    data: Any

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def new(
        cls,
        data: Any,
        *,
        source: str,
        tenant: str,
        conversation: str,
        id: uuid.UUID | None = None,
        correlation_id: uuid.UUID | None = None,
        replay: Replay | None = None,
    ) -> Event:
        eid = id or uuid.uuid4()
        return cls(
            id=eid,
            type=cls.TYPE,
            version=cls.VERSION,
            source=source,
            occurred_at=utcnow(),
            tenant=tenant,
            conversation=conversation,
            correlation_id=correlation_id or eid,
            causation_id=None,
            replay=replay,
            data=data,
        )

    def follow(self, cls: type[Event], data: Any, *, source: str, step: str) -> Event:
        """An event caused by this one, with a deterministic id."""
        return cls(
            id=derive_id(self.id, step),
            type=cls.TYPE,
            version=cls.VERSION,
            source=source,
            occurred_at=utcnow(),
            tenant=self.tenant,
            conversation=self.conversation,
            correlation_id=self.correlation_id,
            causation_id=self.id,
            replay=self.replay,
            data=data,
        )


def _event(type_: str, version: int, data_model: type[BaseModel]) -> type[Event]:
    cls_name = "".join(p.capitalize() for p in type_.split(".")) + (f"V{version}" if version > 1 else "")
    cls = type(
        cls_name,
        (Event,),
        {
            "__annotations__": {"type": Literal[type_], "version": Literal[version], "data": data_model},
            "TYPE": type_,
            "VERSION": version,
            "__module__": __name__,
            "__doc__": f"{type_} v{version}",
        },
    )
    return cls


MessageReceived = _event("message.received", 1, MessageReceivedData)
JobRequested = _event("job.requested", 1, CreateJob)
JobTriggered = _event("job.triggered", 1, JobTriggeredData)
ContextAssembled = _event("context.assembled", 1, ContextAssembledData)
InferenceCompletedV1 = _event("inference.completed", 1, InferenceCompletedData)
InferenceCompleted = _event("inference.completed", 2, InferenceCompletedDataV2)
ReplyGenerated = _event("reply.generated", 1, ReplyGeneratedData)
DeliveryCompleted = _event("delivery.completed", 1, DeliveryCompletedData)
DeadLettered = _event("dead.lettered", 1, DeadLetteredData)

CATALOGUE: dict[tuple[str, int], type[Event]] = {
    (c.TYPE, c.VERSION): c
    for c in (
        MessageReceived,
        InferenceCompletedV1,
        JobRequested,
        JobTriggered,
        ContextAssembled,
        InferenceCompleted,
        ReplyGenerated,
        DeliveryCompleted,
        DeadLettered,
    )
}


class UnknownEvent(ValueError):
    pass


def parse_event(raw: bytes | str | dict[str, Any], upcast: bool = True) -> Event:
    """Parse a record value into its typed event class (validating it).

    With ``upcast`` (the default) an event of an older version is first validated as that version, then
    brought to the newest version by its upcasters, so consumers handle one shape whatever they read."""
    obj = orjson.loads(raw) if isinstance(raw, (bytes, str)) else raw
    if not isinstance(obj, dict):
        raise UnknownEvent("an event is a JSON object")
    key = (obj.get("type"), obj.get("version"))
    cls = CATALOGUE.get(key)  # type: ignore[arg-type]
    if cls is None:
        raise UnknownEvent(f"unknown event type/version {key!r}")
    event = cls.model_validate(obj)
    if upcast:
        from agentbus.upcast import upcast as _upcast

        event = _upcast(event)
    return event
