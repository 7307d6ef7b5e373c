"""The agent's tool loop: a model call, the tool calls it asks for, the next model call, ... until the model
answers with text or the agent's step limit is reached.

Every step is recorded before the next one begins (a model call that asked for tools, each tool result), so
an input delivered again — after a crash, a rebalance — resumes after its last recorded step: no finished
model call is paid twice, no finished tool call runs twice. Each call gets a deterministic idempotency key
that side-effecting tools pass on, which covers the one window left (a tool that ran, then a crash before its
result was recorded). A replay reuses recorded results, runs tools without side effects only when asked, and
never runs a tool with side effects.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
import structlog
from opentelemetry.trace import SpanKind, Status, StatusCode

from agentbus.config import Agent
from agentbus.durable import until_recorded
from agentbus.events import ContextAssembled, Event, parse_event, utcnow
from agentbus.ids import tool_call_key
from agentbus.replaying import Effects
from agentbus.services.reasoner.ports import (
    ChatModel,
    Completion,
    Endpoint,
    InferenceLedger,
    StepRecord,
    Tool,
    ToolCall,
    ToolContext,
    ToolResult,
)
from agentbus.services.reasoner.progress import Reporter
from agentbus.services.reasoner.prompt import fit, message_tokens
from agentbus.telemetry import tracer

log = structlog.get_logger("agentbus.reasoner")

RESULT_LIMIT = 8000  # characters of a tool result the model reads (and the event carries)
LAST_STEP = ("You have used every tool step you may take for this answer. Answer now with what you have, "
             "and say briefly what you could not finish.")


@dataclass(frozen=True)
class ToolOutcome:
    n: int
    call: ToolCall
    side_effects: bool
    key: str
    content: str
    is_error: bool
    latency_ms: float
    reused: bool
    commands: tuple[Event, ...] = ()


@dataclass
class Answer:
    completion: Completion  # the last model call's, with tokens and attempts summed over every call
    steps: int
    tools: list[ToolOutcome] = field(default_factory=list)
    request: list[dict[str, Any]] = field(default_factory=list)  # what the last call was sent
    stopped: bool = False  # the step limit ended the loop


def recorded_outcomes(event: ContextAssembled, steps: Sequence[StepRecord]) -> list[ToolOutcome]:
    """The tool calls of a finished loop, from its recorded steps (for an answer reused from the ledger)."""
    return [_outcome_of(event, s) for s in steps if s.kind == "tool"]


def _outcome_of(event: ContextAssembled, s: StepRecord) -> ToolOutcome:
    d = s.data
    call = ToolCall(id=s.call_id, name=d["tool"], arguments=d["arguments"])
    return ToolOutcome(s.n, call, d["side_effects"], tool_call_key(event.id, s.n, s.call_id), d["content"],
                       d["is_error"], 0.0, True, tuple(parse_event(e) for e in d["commands"]))


def tool_spec(tool: Tool) -> dict[str, Any]:
    return {"type": "function", "function": {"name": tool.name, "description": tool.description,
                                             "parameters": tool.parameters}}


def _completion_data(c: Completion) -> dict[str, Any]:
    return {"text": c.text, "model": c.model, "provider": c.provider, "prompt_tokens": c.prompt_tokens,
            "completion_tokens": c.completion_tokens, "finish_reason": c.finish_reason, "latency_ms": c.latency_ms,
            "attempts": c.attempts, "models_tried": list(c.models_tried),
            "tool_calls": [{"id": t.id, "name": t.name, "arguments": t.arguments} for t in c.tool_calls]}


def _completion_of(d: dict[str, Any]) -> Completion:
    return Completion(**{**d, "models_tried": tuple(d["models_tried"]),
                         "tool_calls": tuple(ToolCall(**t) for t in d["tool_calls"])})


def _assistant(c: Completion) -> dict[str, Any]:
    return {"role": "assistant", "content": c.text or None, "tool_calls": [
        {"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}
        for t in c.tool_calls]}


def _canonical(arguments: str) -> str:
    try:
        return orjson.dumps(orjson.loads(arguments), option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONDecodeError:
        return arguments


def _sum(a: int | None, b: int | None) -> int | None:
    return None if a is None and b is None else (a or 0) + (b or 0)


@dataclass
class ToolLoop:
    llm: ChatModel
    ledger: InferenceLedger
    tool_timeout_s: float = 60.0
    reporter: Reporter | None = None  # the chat's progress: working before each model call, partials

    async def run(self, event: ContextAssembled, agent: Agent, chain: Sequence[Endpoint],
                  messages: list[dict[str, Any]], tools: Sequence[Tool], recorded: Sequence[StepRecord],
                  fx: Effects) -> Answer:
        by_name = {t.name: t for t in tools}
        specs = [tool_spec(t) for t in tools]
        steps = {(s.n, s.call_id): s for s in recorded}
        # a replay's model answers afresh, but may reuse a live call's result for the same tool and arguments
        live_results = {(s.data["tool"], _canonical(s.data["arguments"])): s for s in recorded if s.kind == "tool"}
        budget = min((ep.max_context_tokens for ep in chain if ep.max_context_tokens), default=None)
        transcript: list[dict[str, Any]] = []
        answer = Answer(completion=Completion(text="", model="none", provider="agentbus", attempts=0), steps=0)
        totals = answer.completion
        for n in range(1, agent.max_tool_steps + 1):
            last = n == agent.max_tool_steps or not tools
            head = fit(messages, budget, sum(message_tokens(m) for m in transcript))
            request = head + transcript + ([{"role": "system", "content": LAST_STEP}] if last and transcript else [])
            c = await self._model_step(event, n, chain, request, None if last else specs, agent, steps, fx)
            totals = replace(c, prompt_tokens=_sum(totals.prompt_tokens, c.prompt_tokens),
                             completion_tokens=_sum(totals.completion_tokens, c.completion_tokens),
                             attempts=totals.attempts + c.attempts,
                             models_tried=tuple(dict.fromkeys(totals.models_tried + c.models_tried)))
            answer.steps, answer.request = n, request
            if last or not c.tool_calls:
                answer.stopped = last and bool(transcript)
                answer.completion = replace(totals, tool_calls=())
                return answer
            outcomes = await asyncio.gather(*(
                self._tool_step(event, n, call, by_name, steps, live_results, fx) for call in c.tool_calls))
            answer.tools += outcomes
            transcript += [_assistant(c), *({"role": "tool", "tool_call_id": o.call.id, "content": o.content}
                                            for o in outcomes)]
        raise AssertionError("unreachable: the last step returns")  # pragma: no cover

    async def _model_step(self, event: ContextAssembled, n: int, chain: Sequence[Endpoint],
                          request: list[dict[str, Any]], specs: list[dict[str, Any]] | None, agent: Agent,
                          steps: dict[tuple[int, str], StepRecord], fx: Effects) -> Completion:
        if fx.remember and (found := steps.get((n, ""))) is not None:
            return replace(_completion_of(found.data), attempts=0, latency_ms=0.0)  # paid for already
        on_text = None
        if self.reporter is not None:
            await self.reporter.working()
            on_text = self.reporter.partial if self.reporter.streams else None
        c = await self.llm.complete(chain, request, temperature=agent.temperature, max_tokens=agent.max_tokens,
                                    tools=specs, on_text=on_text)
        if c.tool_calls and fx.remember:  # a call that asked for tools is a step to resume after
            record = StepRecord(n=n, call_id="", kind="llm", data=_completion_data(c))
            await until_recorded(lambda: self.ledger.record_step(event, record), what="model step")
        return c

    async def _tool_step(self, event: ContextAssembled, n: int, call: ToolCall, by_name: dict[str, Tool],
                         steps: dict[tuple[int, str], StepRecord],
                         live_results: dict[tuple[str, str], StepRecord], fx: Effects) -> ToolOutcome:
        key = tool_call_key(event.id, n, call.id)
        tool = by_name.get(call.name)
        side_effects = tool.side_effects if tool is not None else False
        found = steps.get((n, call.id)) if fx.remember else live_results.get((call.name, _canonical(call.arguments)))
        if found is not None:  # its result is known: not run again
            return replace(_outcome_of(event, found), n=n, call=call, key=key)
        started = time.perf_counter()
        with tracer().start_as_current_span(f"execute_tool {call.name}", kind=SpanKind.INTERNAL) as span:
            span.set_attribute("gen_ai.operation.name", "execute_tool")
            span.set_attribute("gen_ai.tool.name", call.name)
            span.set_attribute("gen_ai.tool.call.id", call.id)
            result = await self._execute(event, call, tool, key, fx)
            if result.is_error:
                span.set_status(Status(StatusCode.ERROR, result.content[:100]))
        content = result.content if len(result.content) <= RESULT_LIMIT else (
            result.content[:RESULT_LIMIT] + f"\n[truncated: {len(result.content)} characters in all]")
        outcome = ToolOutcome(n, call, side_effects, key, content, result.is_error,
                              (time.perf_counter() - started) * 1000, False, tuple(result.commands))
        log.info("tool_called", tool=call.name, step=n, error=result.is_error, latency_ms=round(outcome.latency_ms, 1))
        if fx.remember:
            record = StepRecord(n=n, call_id=call.id, kind="tool", data={
                "tool": call.name, "arguments": call.arguments, "side_effects": side_effects, "content": content,
                "is_error": result.is_error, "commands": [orjson.loads(e.to_bytes()) for e in result.commands]})
            await until_recorded(lambda: self.ledger.record_step(event, record), what="tool step")
        return outcome

    async def _execute(self, event: ContextAssembled, call: ToolCall, tool: Tool | None, key: str,
                       fx: Effects) -> ToolResult:
        """The call's result; whatever goes wrong is a result the model reads, never an exception."""
        if tool is None:
            return ToolResult(f"unknown tool {call.name!r}", is_error=True)
        if not fx.run_tools or (tool.side_effects and not fx.run_side_effect_tools):
            why = "tools with side effects never run in a replay" if tool.side_effects else (
                "no recorded result to reuse (replay with --rerun-tools to run it)")
            return ToolResult(f"not run in this replay: {why}", is_error=True)
        try:
            arguments = orjson.loads(call.arguments)
        except orjson.JSONDecodeError as err:
            return ToolResult(f"invalid arguments: not JSON ({err})", is_error=True)
        if not isinstance(arguments, dict):
            return ToolResult("invalid arguments: expected a JSON object", is_error=True)
        ctx = ToolContext(cause=event, idempotency_key=key, now=utcnow())
        try:
            return await asyncio.wait_for(tool.call(arguments, ctx), self.tool_timeout_s)
        except TimeoutError:
            return ToolResult(f"the tool did not answer within {self.tool_timeout_s:.0f} s", is_error=True)
        except Exception as exc:  # a tool's own failure is the model's to hear about, not the consumer's
            log.warning("tool_failed", tool=call.name, error=f"{type(exc).__name__}: {exc}"[:300])
            return ToolResult(f"the tool failed: {type(exc).__name__}: {exc}"[:500], is_error=True)
