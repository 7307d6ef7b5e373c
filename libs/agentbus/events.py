"""The event catalogue: one envelope, typed payloads, one class per (type, version).

Events are immutable facts (past tense) or commands (imperative). Output ids are derived from the causing
event so that a redelivered input produces byte-identical outputs, which downstream consumers then ignore.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from agentbus.ids import derive_id

E = TypeVar("E", bound="Event")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Frozen(BaseModel):
    """Events are immutable; unknown fields are ignored (a tolerant reader), so a producer may add an
    optional field within a version while consumers that do not know it yet keep working."""

    model_config = ConfigDict(frozen=True, extra="ignore")


# ---------------------------------------------------------------- payloads

SEALED_TEXT_SCHEMA: dict[str, Any] = {
    "title": "SealedText",
    "description": "text sealed with its owner's data key (AES-256-GCM; see agentbus.sealing): a reader opens it "
                   "with the key named by kid, and shows [forgotten] once the key is deleted",
    "type": "object",
    "properties": {"alg": {"const": "A256GCM"}, "kid": {"type": "string"},
                   "iv": {"type": "string", "description": "base64url nonce (96 bits)"},
                   "ct": {"type": "string", "description": "base64url ciphertext and tag"}},
    "required": ["alg", "kid", "iv", "ct"],
    "additionalProperties": False,
}
# A person's text in the versions that seal it: on the wire the sealed object (or plain text where nobody owns
# it), inside a process always the text, opened by the consumer (agentbus.sealing.wire) before validation.
Sealable = Annotated[str, WithJsonSchema({"anyOf": [{"type": "string"}, SEALED_TEXT_SCHEMA]})]
SealableJson = Annotated[dict[str, Any] | str, WithJsonSchema({"anyOf": [
    {"type": "object"}, {"type": "string"}, SEALED_TEXT_SCHEMA]})]


class Sender(Frozen):
    id: str
    name: str | None = None
    is_bot: bool = False


class Chat(Frozen):
    id: str
    type: Literal["direct", "group"] = "direct"
    name: str | None = None


class Attachment(Frozen):
    """A file that came with a message or goes out with a reply, held by reference: the bytes live in the blob
    store (``ref``) or at a URL, never inside an event."""

    kind: Literal["image", "file", "audio", "video"]
    name: str | None = None
    content_type: str | None = None
    size: int | None = Field(default=None, ge=0, description="bytes")
    ref: str | None = Field(default=None, description="blob store reference (sha256:<hex>) once stored")
    url: str | None = Field(default=None, description="outbound only: a URL the platform fetches itself")
    transcript: str | None = Field(default=None, description="a voice message's text, as the platform recognised it")
    error: str | None = Field(default=None, description="why the bytes were not stored (too large, refused type, "
                              "platform error); the model is told an attachment came")


class Action(Frozen):
    """A press of a button of a card the bot sent: it comes back as a message of the same conversation."""

    value: str = Field(description="the button's value, as the reply that carried the card set it")
    label: str | None = None
    card_message_id: str | None = Field(default=None, description="the platform's id of the message with the card")


class Button(Frozen):
    label: str = Field(min_length=1, max_length=40)
    value: str = Field(min_length=1, max_length=200, description="what a press sends back (Action.value)")
    style: Literal["default", "primary", "danger"] = "default"


class Card(Frozen):
    """A card with buttons, for the platform's own form (DingTalk ActionCard, Feishu interactive card, Slack
    Block Kit, Telegram inline keyboard)."""

    title: str | None = Field(default=None, max_length=100)
    text: str = Field(default="", max_length=4000)
    buttons: tuple[Button, ...] = Field(default=(), max_length=10)


class MessageReceivedDataV1(Frozen):
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
    attachments: tuple[Attachment, ...] = Field(default=(), description="images, files, voice sent with it")
    action: Action | None = Field(default=None, description="set when the message is a press of a card's button")


class MessageReceivedData(MessageReceivedDataV1):
    """v2: the text is sealed with the sender's data key."""

    text: Sealable


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


JobAction = Literal["create", "update", "pause", "resume", "cancel"]


class JobCommand(Frozen):
    """Command (job.requested v2): create, update, pause, resume or cancel a scheduled job.

    create/update carry the whole job (schedule, channel, chat, prompt); the others name the job only.
    Commands apply in the order they were issued (the envelope's ``occurred_at``); a cancelled job stays
    cancelled (a tombstone), so an old command redriven later changes nothing."""

    job_id: str
    action: JobAction
    schedule: Schedule | None = None
    agent: str | None = None
    channel: str | None = None
    chat: Chat | None = None
    prompt: str | None = None
    reply_route: dict[str, Any] = Field(default_factory=dict)
    requested_by: str = Field(description='who asked: "agent:<id>", "cli", "api"')


class JobTriggeredData(Frozen):
    job_id: str
    due_at: datetime
    agent: str
    channel: str
    chat: Chat
    prompt: str
    reply_route: dict[str, Any] = Field(default_factory=dict)


class TurnV1(Frozen):
    role: Literal["user", "assistant", "system"]
    text: str
    at: datetime
    event_id: uuid.UUID | None = None
    sender: str | None = None
    attachments: tuple[Attachment, ...] = ()
    owner: str | None = Field(default=None, description="whose text it is: the sender of a person's turn, the "
                              "person a reply answered (none for a job's turn); forgetting them erases it")


class Turn(TurnV1):
    """context.assembled v2's turn: its text sealed with its owner's key."""

    text: Sealable


class KnowledgeSource(Frozen):
    """Where a recalled piece of the tenant's knowledge base comes from: the document, its section, and when
    an operator loaded it (the model is shown it, as it is shown who said a memory)."""

    document: uuid.UUID = Field(description="the document's id, as the knowledge listing shows it")
    title: str
    section: str | None = Field(default=None, description="the heading the chunk stands under")
    position: int = Field(default=0, ge=0, description="the chunk's place in the document (0-based)")
    loaded_at: datetime


class RecallV1(Frozen):
    text: str
    score: float
    role: Literal["user", "assistant", "system"] = "user"
    at: datetime | None = None
    conversation: str | None = None
    kind: Literal["turn", "fact"] = Field(
        default="turn", description="a turn of a conversation, or a fact someone asked the agent to remember")
    event_id: uuid.UUID | None = Field(default=None, description="the event the memory was made from")
    sender: str | None = Field(default=None, description="who said it: a sender id, or the agent's id for a "
                               "reply (none for memories stored before senders were kept)")
    sender_name: str | None = None
    channel: str | None = Field(default=None, description="where it was said: the channel id")
    chat: str | None = Field(default=None, description="where it was said: the chat id within the channel")
    chat_name: str | None = None
    chat_type: Literal["direct", "group"] | None = None
    owner: str | None = Field(default=None, description="whose memory it is (the person who said it, was "
                              "answered, or a fact is about); forgetting them erases it")
    knowledge: KnowledgeSource | None = Field(
        default=None, description="set when the item is a chunk of the tenant's knowledge base (then role is "
        "system and nobody said it): the document, its section and when it was loaded")


class Recall(RecallV1):
    """context.assembled v2's memory: its text sealed with its owner's key."""

    text: Sealable


class MemoryCommandV1(Frozen):
    """Command: remember a fact, or forget what is like a query (the agent's ``memory`` tool asks for both), or
    forget one memory by its id (an operator, through the API).

    Forgetting deletes every memory of the scope at least ``min_score`` alike (cosine) to ``text``: the
    default is high so that "forget my locker number" does not take unrelated memories with it."""

    action: Literal["remember", "forget"]
    text: str = Field(min_length=1, max_length=4000,
                      description="remember: the fact, as a sentence; forget: what to forget, as a query")
    subject: str | None = Field(default=None, description="who the fact is about (the sender's id when known)")
    min_score: float = Field(default=0.85, ge=0.0, le=1.0,
                             description="forget: the least cosine similarity to the query of what is deleted")
    requested_by: str = "api"
    memory_id: uuid.UUID | None = Field(
        default=None, description="forget: exactly this memory (its id, as memory lists it) instead of those like "
        "text, which is then only a note; sent with min_score 1.0, so a reader that predates this field deletes "
        "nothing else")


class MemoryCommand(MemoryCommandV1):
    """v2: the text is sealed with the subject's key (plain when there is no subject)."""

    text: Sealable = Field(min_length=1, max_length=4000,
                           description="remember: the fact, as a sentence; forget: what to forget, as a query")


class KnowledgeChunk(Frozen):
    """One bounded piece of a document, with the heading it stands under."""

    position: int = Field(ge=0, description="its place in the document (0-based, across every part)")
    section: str | None = Field(default=None, max_length=300, description="the heading it stands under")
    text: str = Field(min_length=1, max_length=8000)


class KnowledgeCommand(Frozen):
    """Command (knowledge.requested v1): load one part of a document into the tenant's knowledge base, or
    remove a document with every chunk of it.

    A document is chunked before it is published and sent in parts of bounded size (the broker's messages are
    small), each part its own event with a deterministic id, all keyed by the document so they stay in order;
    memory stores each part once and, once a document is removed, stores none of its parts again."""

    action: Literal["add", "remove"]
    document: uuid.UUID
    title: str = Field(default="", max_length=300, description="add: the document's title (its first heading, "
                       "or its file name)")
    source: str | None = Field(default=None, max_length=300, description="add: the file name it was loaded from")
    content_type: str | None = Field(default=None, max_length=100)
    part: int = Field(default=0, ge=0, description="add: which part of the document this is (0-based)")
    parts: int = Field(default=1, ge=1, description="add: how many parts the document was sent in")
    chunks: tuple[KnowledgeChunk, ...] = Field(default=(), max_length=1000)
    loaded_at: datetime | None = Field(default=None, description="add: when the operator loaded it (the same in "
                                       "every part)")
    requested_by: str = Field(description='"token:<id>" or "cli"')


class ContextAssembledDataV1(Frozen):
    agent: str
    channel: str
    channel_type: str
    chat: Chat
    trigger: Literal["message", "job"]
    input: TurnV1
    history: tuple[TurnV1, ...] = ()
    memories: tuple[RecallV1, ...] = ()
    reply_route: dict[str, Any] = Field(default_factory=dict)
    in_reply_to: str | None = None
    refusal: str | None = Field(default=None, description="answer with this text, without the LLM")
    asker: Sender | None = Field(default=None, description="who sent the message answered (none for a job)")


class ContextAssembledData(ContextAssembledDataV1):
    """v2: every turn's and memory's text is sealed with its owner's key."""

    input: Turn
    history: tuple[Turn, ...] = ()
    memories: tuple[Recall, ...] = ()
    earlier: tuple[Turn, ...] = Field(
        default=(), description="turns just before the history window, oldest first, for the agent's running "
        "summary (memory.summary_after): the reasoner folds those its summary does not cover yet")


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
    steps: int = Field(default=1, ge=0, description="model calls of the tool loop for this answer")
    tool_calls: int = Field(default=0, ge=0, description="tool calls of the tool loop for this answer")


class InferenceCompletedDataV3(InferenceCompletedDataV2):
    """v3: the answer's text is sealed with the key of the person asked (its ``owner``)."""

    output_text: Sealable | None = None
    owner: str | None = Field(default=None, description="the person the answer is for (none for a job)")


class ToolCalledDataV1(Frozen):
    """One tool call of the agent's tool loop and its result (what the model read)."""

    agent: str
    step: int = Field(ge=1, description="the model call (1-based) that asked for the tool")
    call_id: str = Field(description="the model's id of the call")
    tool: str
    arguments: dict[str, Any] | str = Field(description="the arguments as parsed JSON (the raw text if invalid)")
    side_effects: bool
    idempotency_key: str = Field(description="the key a side-effecting tool passed on (Idempotency-Key)")
    outcome: Literal["ok", "error"]
    result: str = Field(description="what the model read back (truncated to 8,000 characters)")
    reused: bool = Field(default=False, description="taken from the step ledger (a redelivery or replay): not run")
    latency_ms: float = 0.0
    commands: tuple[uuid.UUID, ...] = Field(default=(), description="ids of the command events it asked for")


class ToolCalledData(ToolCalledDataV1):
    """v2: the arguments and the result are sealed with the key of the person asked (``owner``)."""

    arguments: SealableJson = Field(description="the arguments as parsed JSON (the raw text if invalid)")
    result: Sealable = Field(description="what the model read back (truncated to 8,000 characters)")
    owner: str | None = Field(default=None, description="the person the answer is for (none for a job)")


class ReplyGeneratedDataV1(Frozen):
    agent: str
    channel: str
    channel_type: str
    chat: Chat
    text: str
    format: Literal["text", "markdown"] = "text"
    model: str
    reply_route: dict[str, Any] = Field(default_factory=dict)
    in_reply_to: str | None = None
    asker: Sender | None = Field(default=None, description="who sent the message answered: a group reply "
                                 "addresses them (none for a job's push)")


class ReplyGeneratedDataV2(ReplyGeneratedDataV1):
    """v2: a reply may carry a card with buttons and files or images besides its text."""

    card: Card | None = None
    attachments: tuple[Attachment, ...] = Field(default=(), max_length=10)
    streamed: bool = Field(default=False, description="reply.progress events streamed parts of it first: the "
                           "channel edits that message into this final text instead of sending a new one")


class ReplyGeneratedData(ReplyGeneratedDataV2):
    """v3: the text is sealed with the key of the person answered (``asker``)."""

    text: Sealable


class ReplyProgressDataV1(Frozen):
    """The chat shows that the agent works: a typing indicator, or the answer so far in a message edited as it
    grows. Best effort: a lost progress event costs a typing indicator, never the reply."""

    agent: str
    channel: str
    channel_type: str
    chat: Chat
    reply_route: dict[str, Any] = Field(default_factory=dict)
    in_reply_to: str | None = None
    stage: Literal["working", "partial"]
    seq: int = Field(ge=0, description="orders the progress of one reply; a lower one than seen is dropped")
    text: str = Field(default="", description="partial: the answer so far (not a delta)")


class ReplyProgressData(ReplyProgressDataV1):
    """v2: the answer so far is sealed with the key of the person answered (``asker``)."""

    text: Sealable = Field(default="", description="partial: the answer so far (not a delta)")
    asker: Sender | None = Field(default=None, description="who sent the message answered")


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


class EraseUser(Frozen):
    """Command (user.erasure_requested v1): forget a person of the tenant. Every service that keeps their text
    deletes it and says so with a ``user.erased``; the person's data key is deleted, so their text in the
    event log reads ``[forgotten]`` from then on."""

    user: str = Field(min_length=1, max_length=256, description="the person's sender id, as the platform gives it")
    requested_by: str = Field(description='"token:<id>", "cli", or "user:<id>" when the person asked in chat')


class UserErasedData(Frozen):
    """What one service erased of a person, in answer to a ``user.erasure_requested`` (its id is the causation)."""

    user: str
    service: str
    request_id: uuid.UUID
    deleted: dict[str, int] = Field(default_factory=dict, description="rows (or points) deleted, by store")
    keys_deleted: int = Field(default=0, ge=0, description="data keys this service deleted (the first to act "
                              "deletes the key; the others find it gone)")
    requested_by: str = ""
    at: datetime


class AuditRecordedData(Frozen):
    """Who did what to which tenant through the operator API or the command line, and how it ended."""

    actor: str = Field(description='"token:<id>" for an API token, "cli" for the command line, "user:<id>" for '
                       'a person asking in chat')
    actor_name: str | None = Field(default=None, description="the token's name")
    tenant: str | None = Field(default=None, description="the tenant acted on; none for platform-wide actions")
    action: str = Field(description='what was asked, e.g. "jobs.create", "tokens.revoke"')
    target: str = Field(default="", description="what it was asked of (a job id, a token id)")
    outcome: Literal["ok", "denied", "failed"]
    detail: str = ""
    at: datetime


class ConfigChangedData(Frozen):
    """The whole platform configuration at one version, as agentbus.yaml writes it: credentials stay
    ``{env: NAME}`` references, so the log holds no secret. Every replica of every service applies the newest."""

    version: int = Field(ge=1, description="1 for the first (seeded from agentbus.yaml), one more per change")
    document: dict[str, Any] = Field(description="the configuration (tenants, agents, models, channels, jobs, ...)")
    digest: str = Field(description="sha256 of the document's canonical JSON")
    actor: str = Field(description='"token:<id>", "cli", or "<service>:file" for the seed')
    reason: Literal["seed", "apply", "api"]
    changes: list[str] = Field(default_factory=list, description="what changed since the version before")
    at: datetime


class ReplayRequestedData(Frozen):
    """A replay run asked for through the operator API: which live events to re-run, and how. ``until`` is
    fixed when the run is asked for, so a selection made again (after a crash) picks the same events."""

    run: str = Field(min_length=1, max_length=64)
    entry_type: Literal["message.received", "job.triggered", "context.assembled"]
    since: datetime | None = None
    until: datetime
    conversation: str | None = None
    correlation: str | None = None
    limit: int = Field(ge=1, le=1000)
    rerun_llm: bool = False
    model: str | None = None
    system_prompt: str | None = None
    rerun_tools: bool = False
    requested_by: str = Field(description='"token:<id>" of the caller')


class ReplayEntry(Frozen):
    id: uuid.UUID
    conversation: str


class ReplaySelectedData(Frozen):
    """The events a replay run re-runs, recorded beside their republished copies: the run's status counts
    its finished replies against this list."""

    run: str = Field(min_length=1, max_length=64)
    request_id: uuid.UUID
    entry_type: str
    entries: list[ReplayEntry]
    truncated: bool = Field(default=False, description="more events matched than the run's limit")
    expired: int = Field(default=0, ge=0, description="matching events the log index knows of that the log no "
                         "longer holds (older than the topic's retention): not replayed")


# ---------------------------------------------------------------- envelope


class Replay(Frozen):
    """Marks an event of a shadow run. Replayed events keep the ids of the events they replay, so each
    replayed output can be put beside its live original; consumers key their de-duplication on (id, run)."""

    run: str = Field(min_length=1, max_length=64)
    rerun_llm: bool = False
    model: str | None = None
    system_prompt: str | None = None
    rerun_tools: bool = Field(default=False, description="with rerun_llm: run again the tools without side "
                              "effects that have no recorded result (side-effecting tools never run in a replay)")


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
    ) -> Self:
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

    def follow(self, cls: builtins.type[E], data: Any, *, source: str, step: str) -> E:
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


class MessageReceivedV1(Event):
    """message.received v1 (superseded by v2; upcast on read): a person wrote to an agent on a channel."""

    TYPE: ClassVar[str] = "message.received"
    VERSION: ClassVar[int] = 1
    type: Literal["message.received"]
    version: Literal[1]
    data: MessageReceivedDataV1


class MessageReceived(Event):
    """message.received v2: a person wrote to an agent on a channel (the text sealed with their key)."""

    TYPE: ClassVar[str] = "message.received"
    VERSION: ClassVar[int] = 2
    type: Literal["message.received"]
    version: Literal[2]
    data: MessageReceivedData


def _same(data: dict[str, Any]) -> dict[str, Any]:
    """A version that only starts sealing text: plain text is valid in it, so the payload stays as it is."""
    return data


class JobRequestedV1(Event):
    """job.requested v1 (superseded by v2; upcast on read): create or delete a scheduled job."""

    TYPE: ClassVar[str] = "job.requested"
    VERSION: ClassVar[int] = 1
    type: Literal["job.requested"]
    version: Literal[1]
    data: CreateJob


class JobRequested(Event):
    """job.requested v2: a command to create, update, pause, resume or cancel a scheduled job."""

    TYPE: ClassVar[str] = "job.requested"
    VERSION: ClassVar[int] = 2
    type: Literal["job.requested"]
    version: Literal[2]
    data: JobCommand


def _job_requested_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1 → v2: ``delete`` is now ``cancel`` (a tombstone), and who asked is always said."""
    action = data.get("action") or "create"
    return {**data, "action": "cancel" if action == "delete" else action,
            "requested_by": data.get("requested_by") or "api"}


class JobTriggered(Event):
    """job.triggered v1: a scheduled job came due."""

    TYPE: ClassVar[str] = "job.triggered"
    VERSION: ClassVar[int] = 1
    type: Literal["job.triggered"]
    version: Literal[1]
    data: JobTriggeredData


class ContextAssembledV1(Event):
    """context.assembled v1 (superseded by v2; upcast on read)."""

    TYPE: ClassVar[str] = "context.assembled"
    VERSION: ClassVar[int] = 1
    type: Literal["context.assembled"]
    version: Literal[1]
    data: ContextAssembledDataV1


class ContextAssembled(Event):
    """context.assembled v2: what an agent answers from (the input, history and recalled memories)."""

    TYPE: ClassVar[str] = "context.assembled"
    VERSION: ClassVar[int] = 2
    type: Literal["context.assembled"]
    version: Literal[2]
    data: ContextAssembledData


class MemoryRequestedV1(Event):
    """memory.requested v1 (superseded by v2; upcast on read)."""

    TYPE: ClassVar[str] = "memory.requested"
    VERSION: ClassVar[int] = 1
    type: Literal["memory.requested"]
    version: Literal[1]
    data: MemoryCommandV1


class MemoryRequested(Event):
    """memory.requested v2: a command to remember a fact or to forget memories like a query."""

    TYPE: ClassVar[str] = "memory.requested"
    VERSION: ClassVar[int] = 2
    type: Literal["memory.requested"]
    version: Literal[2]
    data: MemoryCommand


class InferenceCompletedV1(Event):
    """inference.completed v1 (superseded by v2; upcast on read)."""

    TYPE: ClassVar[str] = "inference.completed"
    VERSION: ClassVar[int] = 1
    type: Literal["inference.completed"]
    version: Literal[1]
    data: InferenceCompletedData


class InferenceCompletedV2(Event):
    """inference.completed v2 (superseded by v3; upcast on read)."""

    TYPE: ClassVar[str] = "inference.completed"
    VERSION: ClassVar[int] = 2
    type: Literal["inference.completed"]
    version: Literal[2]
    data: InferenceCompletedDataV2


class InferenceCompleted(Event):
    """inference.completed v3: one finished (or failed) answer of the model chain."""

    TYPE: ClassVar[str] = "inference.completed"
    VERSION: ClassVar[int] = 3
    type: Literal["inference.completed"]
    version: Literal[3]
    data: InferenceCompletedDataV3


def _inference_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1 → v2: prompt/completion tokens move into ``usage`` as input/output tokens."""
    out = {k: v for k, v in data.items() if k not in ("prompt_tokens", "completion_tokens")}
    out["usage"] = {"input_tokens": data.get("prompt_tokens"), "output_tokens": data.get("completion_tokens")}
    return out


class ReplyGeneratedV1(Event):
    """reply.generated v1: the text to push back into the chat."""

    TYPE: ClassVar[str] = "reply.generated"
    VERSION: ClassVar[int] = 1
    type: Literal["reply.generated"]
    version: Literal[1]
    data: ReplyGeneratedDataV1


class ReplyGeneratedV2(Event):
    """reply.generated v2 (superseded by v3; upcast on read): text, and optionally a card and attachments."""

    TYPE: ClassVar[str] = "reply.generated"
    VERSION: ClassVar[int] = 2
    type: Literal["reply.generated"]
    version: Literal[2]
    data: ReplyGeneratedDataV2


class ReplyGenerated(Event):
    """reply.generated v3: text (sealed with the key of the person answered), optionally a card, attachments."""

    TYPE: ClassVar[str] = "reply.generated"
    VERSION: ClassVar[int] = 3
    type: Literal["reply.generated"]
    version: Literal[3]
    data: ReplyGeneratedData


def _reply_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "card": None, "attachments": [], "streamed": False}


class ReplyProgressV1(Event):
    """reply.progress v1 (superseded by v2; upcast on read)."""

    TYPE: ClassVar[str] = "reply.progress"
    VERSION: ClassVar[int] = 1
    type: Literal["reply.progress"]
    version: Literal[1]
    data: ReplyProgressDataV1


class ReplyProgress(Event):
    """reply.progress v2: the agent is working on an answer (typing), or here is the answer so far."""

    TYPE: ClassVar[str] = "reply.progress"
    VERSION: ClassVar[int] = 2
    type: Literal["reply.progress"]
    version: Literal[2]
    data: ReplyProgressData


class ToolCalledV1(Event):
    """tool.called v1 (superseded by v2; upcast on read)."""

    TYPE: ClassVar[str] = "tool.called"
    VERSION: ClassVar[int] = 1
    type: Literal["tool.called"]
    version: Literal[1]
    data: ToolCalledDataV1


class ToolCalled(Event):
    """tool.called v2: a tool the agent called while answering, with its arguments and result (sealed)."""

    TYPE: ClassVar[str] = "tool.called"
    VERSION: ClassVar[int] = 2
    type: Literal["tool.called"]
    version: Literal[2]
    data: ToolCalledData


class DeliveryCompleted(Event):
    """delivery.completed v1: the outcome of pushing one reply."""

    TYPE: ClassVar[str] = "delivery.completed"
    VERSION: ClassVar[int] = 1
    type: Literal["delivery.completed"]
    version: Literal[1]
    data: DeliveryCompletedData


class DeadLettered(Event):
    """dead.lettered v1: an event a service gave up on, with the error, kept for redrive."""

    TYPE: ClassVar[str] = "dead.lettered"
    VERSION: ClassVar[int] = 1
    type: Literal["dead.lettered"]
    version: Literal[1]
    data: DeadLetteredData


class AuditRecorded(Event):
    """audit.recorded v1: an operator's write (allowed or denied), kept for who-did-what."""

    TYPE: ClassVar[str] = "audit.recorded"
    VERSION: ClassVar[int] = 1
    type: Literal["audit.recorded"]
    version: Literal[1]
    data: AuditRecordedData


class ConfigChanged(Event):
    """config.changed v1: the platform's configuration at a new version (a compacted topic, one key)."""

    TYPE: ClassVar[str] = "config.changed"
    VERSION: ClassVar[int] = 1
    type: Literal["config.changed"]
    version: Literal[1]
    data: ConfigChangedData


class ReplayRequested(Event):
    """replay.requested v1: a command to start a replay run (ingress selects and republishes its events)."""

    TYPE: ClassVar[str] = "replay.requested"
    VERSION: ClassVar[int] = 1
    type: Literal["replay.requested"]
    version: Literal[1]
    data: ReplayRequestedData


class ReplaySelected(Event):
    """replay.selected v1: the live events a replay run re-runs, published with their replayed copies."""

    TYPE: ClassVar[str] = "replay.selected"
    VERSION: ClassVar[int] = 1
    type: Literal["replay.selected"]
    version: Literal[1]
    data: ReplaySelectedData


class UserErasureRequested(Event):
    """user.erasure_requested v1: a command to forget a person (keyed ``<tenant>/erasure/<user>``)."""

    TYPE: ClassVar[str] = "user.erasure_requested"
    VERSION: ClassVar[int] = 1
    type: Literal["user.erasure_requested"]
    version: Literal[1]
    data: EraseUser


class KnowledgeRequested(Event):
    """knowledge.requested v1: load a part of a document into a tenant's knowledge base, or remove a document
    (keyed ``<tenant>/knowledge/<document>``)."""

    TYPE: ClassVar[str] = "knowledge.requested"
    VERSION: ClassVar[int] = 1
    type: Literal["knowledge.requested"]
    version: Literal[1]
    data: KnowledgeCommand


class UserErased(Event):
    """user.erased v1: one service has erased what it kept of a person (the audit trail of an erasure)."""

    TYPE: ClassVar[str] = "user.erased"
    VERSION: ClassVar[int] = 1
    type: Literal["user.erased"]
    version: Literal[1]
    data: UserErasedData


CATALOGUE: dict[tuple[str, int], type[Event]] = {
    (c.TYPE, c.VERSION): c
    for c in (
        MessageReceivedV1,
        MessageReceived,
        InferenceCompletedV1,
        InferenceCompletedV2,
        JobRequestedV1,
        JobRequested,
        JobTriggered,
        ContextAssembledV1,
        ContextAssembled,
        InferenceCompleted,
        ReplyGeneratedV1,
        ReplyGeneratedV2,
        ReplyGenerated,
        ReplyProgressV1,
        ReplyProgress,
        ToolCalledV1,
        ToolCalled,
        MemoryRequestedV1,
        MemoryRequested,
        DeliveryCompleted,
        DeadLettered,
        AuditRecorded,
        ConfigChanged,
        ReplayRequested,
        ReplaySelected,
        UserErasureRequested,
        UserErased,
        KnowledgeRequested,
    )
}


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

# how the payload of (type, version N) becomes that of version N+1; a breaking change adds one here
UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("inference.completed", 1): _inference_v1_to_v2,
    ("job.requested", 1): _job_requested_v1_to_v2,
    ("reply.generated", 1): _reply_v1_to_v2,
    # the versions that seal a person's text (agentbus.sealing): plain text is valid in them
    ("message.received", 1): _same,
    ("context.assembled", 1): _same,
    ("reply.generated", 2): _same,
    ("reply.progress", 1): _same,
    ("inference.completed", 2): _same,
    ("tool.called", 1): _same,
    ("memory.requested", 1): _same,
}
LATEST: dict[str, int] = {}
for _type, _version in CATALOGUE:
    LATEST[_type] = max(_version, LATEST.get(_type, 0))


def latest_version(event_type: str) -> int:
    return LATEST[event_type]


def to_latest(event: Event) -> Event:
    """The event at the newest version of its type (the same object when it already is)."""
    while event.VERSION < LATEST[event.TYPE]:
        step = UPCASTERS.get((event.TYPE, event.VERSION))
        if step is None:
            raise LookupError(f"no upcaster from {event.TYPE} v{event.VERSION}")
        target = CATALOGUE[(event.TYPE, event.VERSION + 1)]
        raw = event.model_dump(mode="json")
        raw["version"] = target.VERSION
        raw["data"] = step(raw["data"])
        event = target.model_validate(raw)
    return event


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
    cls = CATALOGUE.get(key)  # type: ignore[arg-type]  # unvalidated JSON: any key may come; a miss is refused
    if cls is None:
        raise UnknownEvent(f"unknown event type/version {key!r}")
    event = cls.model_validate(obj)
    return to_latest(event) if upcast else event
