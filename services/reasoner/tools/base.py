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
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from agentbus.services.reasoner.ports import Tool, ToolContext, ToolError, ToolResult

__all__ = ["NAME", "Tool", "ToolContext", "ToolError", "ToolResult", "TypedTool"]

NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # what OpenAI-compatible APIs accept as a function name


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
