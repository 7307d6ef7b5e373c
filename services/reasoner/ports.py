"""What the reasoner's handler needs from the outside world, and the values those ports speak.

The handler runs the agent's tool loop against three ports: a chat model (any OpenAI-compatible endpoint of
the agent's chain), the inference ledger (finished answers and the recorded steps of unfinished ones), and
the agent's tools. Nothing here knows HTTP or PostgreSQL; ``llm.py``, ``ledger.py`` and ``tools/`` do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

from agentbus.config import Agent
from agentbus.events import Chat, ContextAssembled, Event

ECHO = "echo"  # the built-in model that answers without an endpoint


@dataclass(frozen=True)
class Endpoint:
    name: str  # the name agents use
    model: str  # the provider's model id
    base_url: str | None  # None: the echo model
    api_key: str | None = None
    timeout_s: float = 60.0
    headers: dict[str, str] = field(default_factory=dict)
    max_context_tokens: int | None = None
    tools: bool = True  # whether the endpoint accepts OpenAI `tools`
    vision: bool = False  # whether the endpoint accepts image_url parts


@dataclass(frozen=True)
class ToolCall:
    """One call the model asked for: its id, the tool's name, the arguments as the JSON text it sent."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    provider: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    latency_ms: float = 0.0
    attempts: int = 1
    models_tried: tuple[str, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()


# called with the answer so far while a streamed model call runs (the whole text, not a delta)
OnText = Callable[[str], Awaitable[None]]


class BlobReader(Protocol):
    """The shared blob store, read side: the bytes of an image sent to the bot, by reference."""

    async def get(self, ref: str) -> tuple[bytes, str] | None: ...


class ChatModel(Protocol):
    async def complete(
        self, chain: Sequence[Endpoint], messages: list[dict[str, Any]], *, temperature: float | None,
        max_tokens: int | None, tools: list[dict[str, Any]] | None = None, on_text: OnText | None = None,
    ) -> Completion:
        """With ``on_text`` the endpoint is asked to stream, and ``on_text`` hears the text as it grows;
        the completion returned is the same either way."""
        ...


# ---------------------------------------------------------------- the ledger


@dataclass(frozen=True)
class StepRecord:
    """One recorded step of a tool loop: a model call that asked for tools (``call_id`` empty), or the result
    of one tool call. Recorded before the next step begins, so a redelivered input resumes after it."""

    n: int  # the model call (1-based) the step belongs to
    call_id: str
    kind: Literal["llm", "tool"]
    data: dict[str, Any]


@dataclass(frozen=True)
class Lookup:
    outputs: list[Event] | None  # the outputs recorded for this input (a redelivery), or None
    inference: Completion | None  # its finished inference, or None
    steps: tuple[StepRecord, ...] = ()  # the recorded steps of its tool loop


@dataclass(frozen=True)
class Record:
    """A finished answer: the inference (unless ``store_inference`` is False) and the processed record."""

    event: ContextAssembled
    agent: str
    request: list[dict[str, Any]]
    completion: Completion
    outputs: Sequence[Event]
    store_inference: bool = True
    # tokens of other model calls made for this input (a running summary's fold), counted in its row's usage
    extra_tokens: tuple[int, int] = (0, 0)


class Budget(Protocol):
    """The tenants' LLM tokens per day (``budget.TokenBudget``)."""

    async def used_up(self, tenant: str) -> str | None:
        """The text to answer instead of calling a model, once the tenant's day is used up; else None."""
        ...

    async def count(self, outputs: Sequence[Event]) -> None:
        """Add the tokens of the model calls among an answer's outputs, each inference once."""
        ...


class InferenceLedger(Protocol):
    async def lookup(self, event: ContextAssembled) -> Lookup: ...

    async def record(self, record: Record) -> list[Event]: ...

    async def record_step(self, event: ContextAssembled, step: StepRecord) -> None: ...


# ---------------------------------------------------------------- tools

C = TypeVar("C", bound=Event)


class ToolError(Exception):
    """A tool call that failed in a way the model is told about (it may correct itself and try again)."""


@dataclass(frozen=True)
class ToolContext:
    cause: ContextAssembled  # the input the loop answers: tenant, conversation, channel, chat, agent
    idempotency_key: str  # deterministic per (input, step, call): the same on a redelivery, unique otherwise
    now: datetime
    sender: str | None = None

    @property
    def tenant(self) -> str:
        return self.cause.tenant

    @property
    def conversation(self) -> str:
        return self.cause.conversation

    @property
    def channel(self) -> str:
        return self.cause.data.channel

    @property
    def chat(self) -> Chat:
        return self.cause.data.chat

    @property
    def agent(self) -> str:
        return self.cause.data.agent

    def command(self, cls: type[C], data: Any, name: str = "command") -> C:
        """A command event caused by this call, with an id derived from the call (the same on a redelivery)."""
        return self.cause.follow(cls, data, source="reasoner", step=f"{self.idempotency_key}:{name}")


@dataclass(frozen=True)
class ToolResult:
    content: str  # what the model reads
    is_error: bool = False
    commands: Sequence[Event] = ()  # command events to publish with the reply, once


class Tool(Protocol):
    """Read-only members, so that a plain attribute, a class variable (``TypedTool``) and a property all
    satisfy it."""

    @property
    def name(self) -> str: ...  # as the model sees it: [a-zA-Z0-9_-]{1,64}

    @property
    def description(self) -> str: ...

    @property
    def side_effects(self) -> bool: ...

    @property
    def parameters(self) -> dict[str, Any]: ...  # JSON Schema of the arguments object

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult: ...


class Toolbox(Protocol):
    """The tools an agent may call (built-in, MCP, plugins), as its configuration allows."""

    def for_agent(self, agent: Agent) -> Sequence[Tool]: ...
