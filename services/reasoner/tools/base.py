"""What a tool is, to the reasoner's tool loop.

A tool is called with the model's arguments (a JSON object) and a context saying whose conversation it acts
for. Its result is text the model reads. A tool that changes the world (``side_effects``) is run at most once
per decision: the loop records every call and result before the next step, gives the call a deterministic
``idempotency_key`` (which HTTP tools send as ``Idempotency-Key``), and never runs it in a replay. A tool may
also ask for command events (``job.requested``...): they are published with the reply, once, with ids
derived from the call, so a redelivered input asks for the same commands and consumers ignore the repeat.

Failures the model should hear about (bad arguments, a server that is down, a refused URL) are a
``ToolError`` or an error result, never an exception out of the consumer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from agentbus.events import Chat, ContextAssembled, Event

C = TypeVar("C", bound=Event)
NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # what OpenAI-compatible APIs accept as a function name


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
    commands: Sequence[Any] = field(default_factory=tuple)  # command events to publish with the reply


class Tool(Protocol):
    """Read-only members, so that a plain attribute, a class variable (``TypedTool``) and a property all
    satisfy it."""

    @property
    def name(self) -> str: ...  # as the model sees it (see NAME)

    @property
    def description(self) -> str: ...

    @property
    def side_effects(self) -> bool: ...

    @property
    def parameters(self) -> dict[str, Any]: ...  # JSON Schema of the arguments object

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult: ...


A = TypeVar("A", bound=BaseModel)


class TypedTool(Generic[A]):
    """A tool whose arguments are a pydantic model: the JSON Schema the model is sent is generated from it,
    and arguments that do not validate come back to the model as a tool error naming the field."""

    name: ClassVar[str]
    description: ClassVar[str]
    side_effects: ClassVar[bool] = False
    args: ClassVar[type[BaseModel]]

    @property
    def parameters(self) -> dict[str, Any]:
        schema = self.args.model_json_schema()
        schema.pop("title", None)
        return schema

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        try:
            parsed = self.args.model_validate(arguments)
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                                 for e in err.errors())
            return ToolResult(f"invalid arguments: {problems}", is_error=True)
        try:
            return await self.run(parsed, ctx)  # type: ignore[arg-type]  # parsed is an instance of self.args (A)
        except ToolError as err:
            return ToolResult(str(err), is_error=True)

    async def run(self, args: A, ctx: ToolContext) -> ToolResult:
        raise NotImplementedError
