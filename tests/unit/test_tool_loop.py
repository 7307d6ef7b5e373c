"""The reasoner's tool loop with fakes: steps recorded before the next, resumed after a crash, tools run once,
errors told to the model, the step limit, replays, and the apology when an answer cannot be made."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from agentbus.bus import TransientError
from agentbus.config import parse_config
from agentbus.events import (
    Chat,
    ContextAssembled,
    ContextAssembledData,
    Event,
    InferenceCompleted,
    JobCommand,
    JobRequested,
    Replay,
    ReplyGenerated,
    ToolCalled,
    Turn,
    utcnow,
)
from agentbus.ids import tool_call_key
from agentbus.services.reasoner.handlers import Reasoner
from agentbus.services.reasoner.ports import Completion, ToolResult
from agentbus.settings import Settings
from tests.support.platform import base_config
from tests.unit.fakes_reasoner import FakeInferenceLedger, FakeToolbox, RecordingTool, ScriptedLLM, asks


def config(**agent: Any) -> Any:
    raw = base_config()
    raw["agents"][0].update({"tools": ["lookup", "send"], **agent})
    return parse_config(raw)


def context(text: str = "what is x?") -> ContextAssembled:
    return ContextAssembled.new(
        ContextAssembledData(agent="assistant", channel="acme", channel_type="webhook", chat=Chat(id="c"),
                             trigger="message", input=Turn(role="user", text=text, at=utcnow())),
        source="memory", tenant="acme", conversation="acme/acme/c",
    )


def text(t: str) -> Completion:
    return Completion(text=t, model="m", provider="test", prompt_tokens=2, completion_tokens=3, finish_reason="stop")


def tool_then_text(messages: list[dict[str, Any]]) -> Completion:
    """Asks for the lookup tool, then answers with what the tool said."""
    if messages[-1]["role"] == "tool":
        return text(f"the answer is {messages[-1]['content']}")
    return asks(("lookup", {"q": "x"}))


def reasoner(llm: ScriptedLLM, *tools: Any, ledger: FakeInferenceLedger | None = None,
             **agent: Any) -> tuple[Reasoner, FakeInferenceLedger]:
    ledger = ledger or FakeInferenceLedger()
    return Reasoner(config(**agent), Settings(), ledger, llm, FakeToolbox(list(tools))), ledger


def of(outputs: Any, cls: type[Event]) -> list[Any]:
    return [o for o in outputs if isinstance(o, cls)]


async def test_a_tool_call_then_an_answer_is_one_event_per_step() -> None:
    tool = RecordingTool()
    r, _ = reasoner(ScriptedLLM(tool_then_text), tool)
    e = context()
    out = await r.answer(e)
    [called] = of(out, ToolCalled)
    [inference] = of(out, InferenceCompleted)
    [reply] = of(out, ReplyGenerated)
    assert reply.data.text == "the answer is found x"
    assert called.data.tool == "lookup" and called.data.arguments == {"q": "x"} and called.data.outcome == "ok"
    assert called.data.result == "found x" and called.data.step == 1 and not called.data.reused
    assert called.data.idempotency_key == tool_call_key(e.id, 1, "call_0") == tool.calls[0][1]
    assert inference.data.steps == 2 and inference.data.tool_calls == 1
    assert inference.data.usage.input_tokens == 3 and inference.data.usage.output_tokens == 4, "summed"
    assert [type(o) for o in out] == [ToolCalled, InferenceCompleted, ReplyGenerated]


async def test_the_model_is_offered_the_agents_tools_in_the_openai_format() -> None:
    llm = ScriptedLLM(tool_then_text)
    r, _ = reasoner(llm, RecordingTool(), RecordingTool(name="other"))
    await r.answer(context())
    offered = llm.requests[0][1]
    assert offered == [{"type": "function", "function": {"name": "lookup", "description": "looks something up",
                                                         "parameters": RecordingTool().parameters}}]
    assistant, tool_msg = llm.requests[1][0][-2:]
    assert assistant["tool_calls"][0]["function"] == {"name": "lookup", "arguments": '{"q":"x"}'}
    assert tool_msg == {"role": "tool", "tool_call_id": "call_0", "content": "found x"}


async def test_parallel_tool_calls_all_run_and_all_answer_the_model() -> None:
    tool = RecordingTool()

    def script(messages: list[dict[str, Any]]) -> Completion:
        if messages[-1]["role"] == "tool":
            return text(" + ".join(m["content"] for m in messages if m["role"] == "tool"))
        return asks(("lookup", {"q": "a"}), ("lookup", {"q": "b"}))

    r, _ = reasoner(ScriptedLLM(script), tool)
    out = await r.answer(context())
    assert sorted(a["q"] for a, _ in tool.calls) == ["a", "b"]
    assert of(out, ReplyGenerated)[0].data.text == "found a + found b"
    assert len({c.data.idempotency_key for c in of(out, ToolCalled)}) == 2


async def test_a_redelivered_input_resumes_after_its_last_recorded_step() -> None:
    side = RecordingTool(name="send", side_effects=True, answer=lambda a: ToolResult("sent"))
    calls = {"n": 0}

    def script(messages: list[dict[str, Any]]) -> Completion:
        calls["n"] += 1
        if messages[-1]["role"] == "tool":
            if calls["n"] == 2:  # the reasoner dies (a transient failure here) before the second model call
                raise TransientError("killed")
            return text("done")
        return asks(("send", {"q": "hello"}))

    llm = ScriptedLLM(script)
    r, ledger = reasoner(llm, side)
    e = context()
    with pytest.raises(TransientError):
        await r.answer(e)
    out = await r.answer(e)  # redelivered
    assert len(side.calls) == 1, "the side-effecting tool ran once"
    assert calls["n"] == 3, "the first model call was not paid again"
    [called] = of(out, ToolCalled)
    assert called.data.reused and called.data.result == "sent" and called.data.side_effects
    assert of(out, ReplyGenerated)[0].data.text == "done"
    again = await r.answer(e)
    assert again == out and calls["n"] == 3, "a redelivery of a finished input changes nothing"
    # the processed record lost: the finished inference and its tool events come from the ledger
    ledger.processed.clear()
    rebuilt = await r.answer(e)
    assert [o.id for o in rebuilt] == [o.id for o in out] and calls["n"] == 3 and len(side.calls) == 1


@pytest.mark.parametrize(("name", "arguments", "error"), [
    ("lookup", "{not json", "invalid arguments: not JSON"),
    ("lookup", "[1, 2]", "expected a JSON object"),
    ("missing", "{}", "unknown tool 'missing'"),
])
async def test_bad_calls_from_the_model_are_tool_errors_it_reads(name: str, arguments: str, error: str) -> None:
    from agentbus.services.reasoner.ports import ToolCall

    def script(messages: list[dict[str, Any]]) -> Completion:
        if messages[-1]["role"] == "tool":
            return text(f"sorry: {messages[-1]['content']}")
        return Completion(text="", model="m", provider="t", tool_calls=(ToolCall("c1", name, arguments),))

    tool = RecordingTool()
    r, _ = reasoner(ScriptedLLM(script), tool)
    out = await r.answer(context())
    [called] = of(out, ToolCalled)
    assert called.data.outcome == "error" and error in called.data.result
    assert error in of(out, ReplyGenerated)[0].data.text and tool.calls == []


async def test_a_tool_that_raises_is_an_error_result_not_a_consumer_failure() -> None:
    tool = RecordingTool(fail=RuntimeError("ticket system on fire"))
    r, _ = reasoner(ScriptedLLM(tool_then_text), tool)
    out = await r.answer(context())
    [called] = of(out, ToolCalled)
    assert called.data.outcome == "error" and "ticket system on fire" in called.data.result


async def test_the_step_limit_ends_the_loop_and_the_answer_says_so() -> None:
    llm = ScriptedLLM(lambda messages: asks(("lookup", {"q": str(len(messages))})))
    tool = RecordingTool()
    r, _ = reasoner(llm, tool, max_tool_steps=3)
    out = await r.answer(context())
    assert llm.calls == 3 and len(tool.calls) == 2
    assert llm.requests[-1][1] is None, "the last model call is offered no tools"
    assert "every tool step" in llm.requests[-1][0][-1]["content"]
    [reply] = of(out, ReplyGenerated)
    assert "I stopped after 2 tool steps" in reply.data.text


async def test_command_events_of_a_tool_go_out_with_the_reply_once() -> None:
    def schedule(args: dict[str, Any]) -> ToolResult:
        return ToolResult("scheduled", commands=[job_command])

    e = context("remind me")
    job_command = e.follow(JobRequested, JobCommand(job_id="j1", action="cancel", requested_by="agent:assistant"),
                           source="reasoner",
                           step=f"{tool_call_key(e.id, 1, 'call_0')}:job")
    tool = RecordingTool(name="send", side_effects=True, answer=schedule)
    r, ledger = reasoner(ScriptedLLM(lambda m: text("ok") if m[-1]["role"] == "tool" else asks(("send", {"q": 1}))),
                         tool)
    out = await r.answer(e)
    assert of(out, JobRequested) == [job_command]
    ledger.processed.clear()
    assert of(await r.answer(e), JobRequested) == [job_command], "the same command (same id) from the ledger"


async def test_a_replay_reuses_the_answer_and_shows_the_live_tool_calls() -> None:
    side = RecordingTool(name="send", side_effects=True, answer=lambda a: ToolResult("sent"))
    llm = ScriptedLLM(lambda m: text("done") if m[-1]["role"] == "tool" else asks(("send", {"q": "x"})))
    r, ledger = reasoner(llm, side)
    live = context()
    await r.answer(live)
    replayed = await r.answer(live.model_copy(update={"replay": Replay(run="r1")}))
    [called] = of(replayed, ToolCalled)
    assert called.data.reused and called.replay == Replay(run="r1")
    assert llm.calls == 2 and len(side.calls) == 1


async def test_a_replay_that_reruns_the_model_never_runs_a_side_effecting_tool() -> None:
    side = RecordingTool(name="send", side_effects=True, answer=lambda a: ToolResult("sent"))
    pure = RecordingTool()

    def script(messages: list[dict[str, Any]]) -> Completion:
        if messages[-1]["role"] == "tool":
            return text(" | ".join(m["content"] for m in messages if m["role"] == "tool"))
        return asks(("send", {"q": "new"}), ("lookup", {"q": "y"}))

    r, ledger = reasoner(ScriptedLLM(script), side, pure)
    e = context()
    rerun = e.model_copy(update={"replay": Replay(run="r2", rerun_llm=True)})
    out = await r.answer(rerun)
    assert side.calls == [] and pure.calls == []
    results = {c.data.tool: c.data.result for c in of(out, ToolCalled)}
    assert "never run in a replay" in results["send"] and "--rerun-tools" in results["lookup"]
    assert ledger.steps == {} and ledger.inferences == {}, "a replay writes no step and no inference"
    rerun_tools = e.model_copy(update={"replay": Replay(run="r3", rerun_llm=True, rerun_tools=True)})
    out = await r.answer(rerun_tools)
    assert side.calls == [] and [a for a, _ in pure.calls] == [{"q": "y"}]


async def test_a_replay_reuses_a_live_result_for_the_same_tool_and_arguments() -> None:
    side = RecordingTool(name="send", side_effects=True, answer=lambda a: ToolResult("sent live"))
    llm = ScriptedLLM(lambda m: text("ok") if m[-1]["role"] == "tool" else asks(("send", {"q": "x"})))
    r, _ = reasoner(llm, side)
    e = context()
    await r.answer(e)
    out = await r.answer(e.model_copy(update={"replay": Replay(run="r4", rerun_llm=True)}))
    [called] = of(out, ToolCalled)
    assert called.data.reused and called.data.result == "sent live" and len(side.calls) == 1


async def test_an_answer_that_cannot_be_made_gets_the_agents_apology() -> None:
    r, _ = reasoner(ScriptedLLM(), apology="Sorry, the assistant is unavailable.")
    e = context()
    failed, reply = await r.apologise(e, RuntimeError("all models failed"))
    assert isinstance(failed, InferenceCompleted) and failed.data.outcome == "failed"
    assert isinstance(reply, ReplyGenerated) and reply.data.text == "Sorry, the assistant is unavailable."
    normal = [o for o in await r.answer(e) if isinstance(o, ReplyGenerated)][0]
    assert reply.id != normal.id, "a redriven input still gets its real answer"
    [only] = await r.apologise(e.model_copy(update={"replay": Replay(run="r")}), RuntimeError("x"))
    assert isinstance(only, InferenceCompleted), "a replay never apologises into a chat"


def test_the_context_budget_drops_the_oldest_history_never_the_prompt_or_the_question() -> None:
    from agentbus.services.reasoner.prompt import fit, message_tokens

    msgs = [{"role": "system", "content": "be kind"}, {"role": "system", "content": "memories: x"},
            *({"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " + "word " * 20}
              for i in range(10)),
            {"role": "user", "content": "the question"}]
    kept = fit(msgs, budget=sum(message_tokens(m) for m in msgs[:2] + msgs[-3:]))
    assert kept == msgs[:2] + msgs[-3:]
    assert fit(msgs, budget=1) == msgs[:2] + msgs[-1:], "the question and the prompts are sent regardless"
    assert fit(msgs, None) == msgs
    assert message_tokens({"role": "user", "content": "你好世界"}) == 4 + 4


def test_tool_arguments_are_kept_as_the_model_sent_them_when_they_are_not_json() -> None:
    assert orjson.loads(asks(("lookup", {"q": "x"})).tool_calls[0].arguments) == {"q": "x"}
