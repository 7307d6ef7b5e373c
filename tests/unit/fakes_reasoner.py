"""In-memory fakes of the reasoner's ports: they record what happened so tests assert on state."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentbus.config import Agent
from agentbus.events import ContextAssembled, Event
from agentbus.services.reasoner.ports import (
    Completion,
    Endpoint,
    Lookup,
    OnText,
    Record,
    StepRecord,
    Tool,
    ToolCall,
    ToolContext,
    ToolResult,
)


def _run(event: Event) -> str:
    return event.replay.run if event.replay else ""


@dataclass
class FakeInferenceLedger:
    inferences: dict[uuid.UUID, Completion] = field(default_factory=dict)
    processed: dict[tuple[uuid.UUID, str], list[Event]] = field(default_factory=dict)
    steps: dict[uuid.UUID, dict[tuple[int, str], StepRecord]] = field(default_factory=dict)
    fail_records: list[BaseException] = field(default_factory=list)  # raised by the next records, in order
    records: list[Record] = field(default_factory=list)  # every record written, as the ledger got it

    async def lookup(self, event: ContextAssembled) -> Lookup:
        steps = tuple(v for _, v in sorted(self.steps.get(event.id, {}).items()))
        return Lookup(self.processed.get((event.id, _run(event))), self.inferences.get(event.id), steps)

    async def record(self, record: Record) -> list[Event]:
        if self.fail_records:
            raise self.fail_records.pop(0)
        self.records.append(record)
        if record.store_inference:
            self.inferences.setdefault(record.event.id, record.completion)
        return self.processed.setdefault((record.event.id, _run(record.event)), list(record.outputs))

    async def record_step(self, event: ContextAssembled, step: StepRecord) -> None:
        self.steps.setdefault(event.id, {}).setdefault((step.n, step.call_id), step)


Reply = Callable[[list[dict[str, Any]]], Completion]


@dataclass
class ScriptedLLM:
    """Answers ``reply to <last user message>``, or what ``script`` returns for the messages it is sent."""

    script: Reply | None = None
    calls: int = 0
    requests: list[tuple[list[dict[str, Any]], list[dict[str, Any]] | None]] = field(default_factory=list)
    fail: BaseException | None = None
    streamed: list[bool] = field(default_factory=list)  # per call: whether it was asked to stream

    async def complete(
        self, chain: Sequence[Endpoint], messages: list[dict[str, Any]], *, temperature: float | None,
        max_tokens: int | None, tools: list[dict[str, Any]] | None = None, on_text: OnText | None = None,
    ) -> Completion:
        self.calls += 1
        self.requests.append((list(messages), tools))
        self.streamed.append(on_text is not None)
        if self.fail is not None:
            raise self.fail
        if self.script is not None:
            c = self.script(messages)
        else:
            c = Completion(text=f"reply to {messages[-1]['content']}", model=chain[0].model, provider="test",
                           prompt_tokens=3, completion_tokens=4, finish_reason="stop", latency_ms=1.0,
                           models_tried=(chain[0].name,))
        if on_text is not None:  # as a streamed call does: the text word by word, growing
            words = c.text.split(" ")
            for i in range(1, len(words) + 1):
                await on_text(" ".join(words[:i]))
        return c


def asks(*calls: tuple[str, dict[str, Any]]) -> Completion:
    """A model answer that asks for tool calls."""
    import orjson

    return Completion(text="", model="m", provider="test", prompt_tokens=1, completion_tokens=1,
                      finish_reason="tool_calls", tool_calls=tuple(
                          ToolCall(id=f"call_{i}", name=n, arguments=orjson.dumps(a).decode())
                          for i, (n, a) in enumerate(calls)))


@dataclass
class RecordingTool:
    """A tool that records each call (and its idempotency key) and answers from ``answer``."""

    name: str = "lookup"
    description: str = "looks something up"
    side_effects: bool = False
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {
        "q": {"type": "string"}}, "required": ["q"]})
    calls: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    answer: Callable[[dict[str, Any]], ToolResult] = lambda args: ToolResult(f"found {args.get('q')}")
    fail: BaseException | None = None

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        self.calls.append((arguments, ctx.idempotency_key))
        if self.fail is not None:
            raise self.fail
        return self.answer(arguments)


@dataclass
class FakeToolbox:
    tools: list[Tool] = field(default_factory=list)

    def for_agent(self, agent: Agent) -> Sequence[Tool]:
        return [t for t in self.tools if t.name in agent.tools]


@dataclass
class FakeProgressSink:
    """Records the reply.progress events the reasoner publishes; ``fail`` makes every publish raise."""

    events: list[Event] = field(default_factory=list)
    fail: BaseException | None = None

    async def publish(self, event: Event) -> None:
        if self.fail is not None:
            raise self.fail
        self.events.append(event)
