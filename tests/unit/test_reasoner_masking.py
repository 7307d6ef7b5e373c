"""The reasoner with ``pii_masking``: the model reads placeholders in every message of every call of the tool
loop, and the reply, the streamed text, the tool calls and the ledger get the real values back."""

from __future__ import annotations

from typing import Any

import orjson

from agentbus.config import PlatformConfig, parse_config
from agentbus.events import (
    Chat,
    ContextAssembled,
    ContextAssembledData,
    InferenceCompleted,
    Recall,
    ReplyGenerated,
    ReplyProgress,
    ToolCalled,
    Turn,
    utcnow,
)
from agentbus.services.reasoner.handlers import Reasoner
from agentbus.services.reasoner.ports import Completion, ToolResult
from agentbus.settings import Settings
from tests.support.platform import base_config
from tests.unit.fakes_reasoner import (
    FakeInferenceLedger,
    FakeProgressSink,
    FakeToolbox,
    RecordingTool,
    ScriptedLLM,
    asks,
)

PHONE, EMAIL, CARD = "138 0013 8000", "alice@example.com", "6222 0212 3456 7890 128"
COLLEAGUE = "bob@example.org"
PROMPT = "You are a test assistant. Our hotline is 400-810-8888."


def config(masking: Any, progress: str = "off") -> PlatformConfig:
    raw = base_config()
    raw["tenants"][0]["pii_masking"] = masking
    raw["agents"][0].update({"tools": ["lookup"], "system_prompt": PROMPT})
    raw["channels"].append({"id": "tg", "type": "telegram", "tenant": "acme", "agent": "assistant",
                            "mode": "stream", "bot_token": {"env": "TEST_TG_TOKEN", "default": "1:abc"},
                            "progress": progress})
    return parse_config(raw)


def context(text: str) -> ContextAssembled:
    return ContextAssembled.new(
        ContextAssembledData(
            agent="assistant", channel="tg", channel_type="telegram", chat=Chat(id="42"), trigger="message",
            input=Turn(role="user", text=text, at=utcnow()), reply_route={"chat_id": 42}, in_reply_to="7",
            history=(Turn(role="user", text=f"my card is {CARD}", at=utcnow()),
                     Turn(role="assistant", text="noted", at=utcnow())),
            memories=(Recall(text=f"my mail is {EMAIL}", score=0.9),)),
        source="memory", tenant="acme", conversation="acme/tg/42")


def reasoner(llm: ScriptedLLM, masking: Any = True, progress: str = "off", *tools: Any,
             ) -> tuple[Reasoner, FakeInferenceLedger, FakeProgressSink]:
    ledger, sink = FakeInferenceLedger(), FakeProgressSink()
    return Reasoner(config(masking, progress), Settings(reasoner_stream_interval_s=0.0), ledger, llm,
                    FakeToolbox(list(tools)), progress=sink), ledger, sink


def said(messages: list[dict[str, Any]]) -> str:
    """Everything a request carries as text, tool-call arguments included."""
    return orjson.dumps(messages).decode()


def echo(messages: list[dict[str, Any]]) -> Completion:
    """A model that repeats what it read, placeholders and all."""
    last = messages[-1]["content"]
    return Completion(text=f"Noted: {last}; card {messages[2]['content'].split()[-1]}", model="m", provider="test")


def of(outputs: Any, cls: type) -> list[Any]:
    return [o for o in outputs if isinstance(o, cls)]


async def test_the_model_reads_placeholders_and_the_reply_has_the_values() -> None:
    llm = ScriptedLLM(echo)
    r, ledger, _ = reasoner(llm)
    out = await r.answer(context(f"call me on {PHONE} or +86 13800138000, mail {EMAIL}"))
    [(request, _)] = llm.requests
    text = said(request)
    for value in (PHONE, "13800138000", EMAIL, CARD):
        assert value not in text
    assert request[0]["content"] == PROMPT  # the operator's own prompt is not a user's data
    assert request[1]["content"].endswith("my mail is [EMAIL_1]")  # the recalled memory comes first
    assert request[2]["content"] == "my card is [BANK_CARD_1]"
    assert request[-1]["content"] == "call me on [PHONE_1] or [PHONE_1], mail [EMAIL_1]"
    [reply] = of(out, ReplyGenerated)
    assert reply.data.text == f"Noted: call me on {PHONE} or {PHONE}, mail {EMAIL}; card {CARD}"
    [inference] = of(out, InferenceCompleted)
    assert inference.data.output_text == reply.data.text
    assert ledger.records[0].completion.text == reply.data.text  # the ledger keeps what the user got


async def test_off_by_default_the_model_reads_the_text_as_written() -> None:
    llm = ScriptedLLM(echo)
    r, _, _ = reasoner(llm, masking=False)
    await r.answer(context(f"call me on {PHONE}, mail {EMAIL}"))
    [(request, _)] = llm.requests
    assert request[-1]["content"] == f"call me on {PHONE}, mail {EMAIL}" and CARD in said(request)
    assert "[PHONE_" not in said(request) and "[EMAIL_" not in said(request)


async def test_only_the_tenants_kinds_are_masked() -> None:
    llm = ScriptedLLM(echo)
    r, _, _ = reasoner(llm, masking=["email"])
    await r.answer(context(f"call me on {PHONE}, mail {EMAIL}"))
    [(request, _)] = llm.requests
    assert request[-1]["content"] == f"call me on {PHONE}, mail [EMAIL_1]" and CARD in said(request)


async def test_a_tool_gets_the_real_value_and_its_result_reaches_the_model_masked() -> None:
    def script(messages: list[dict[str, Any]]) -> Completion:
        if messages[-1]["role"] == "tool":
            return Completion(text=f"Ask {messages[-1]['content'].split()[-1]}", model="m", provider="test")
        return asks(("lookup", {"q": "who else answers [PHONE_1]?"}))

    tool = RecordingTool(answer=lambda args: ToolResult(f"shared with {COLLEAGUE}"))
    llm = ScriptedLLM(script)
    r, ledger, _ = reasoner(llm, True, "off", tool)
    e = context(f"who else answers {PHONE}?")
    out = await r.answer(e)
    assert tool.calls[0][0] == {"q": f"who else answers {PHONE}?"}  # the tool runs on the value
    second, _ = llm.requests[1]
    assert PHONE not in said(second) and COLLEAGUE not in said(second)
    assert second[-2]["tool_calls"][0]["function"]["arguments"] == '{"q":"who else answers [PHONE_1]?"}'
    assert second[-1]["content"] == "shared with [EMAIL_2]"  # the memory's address was [EMAIL_1]
    [called] = of(out, ToolCalled)
    assert called.data.arguments == {"q": f"who else answers {PHONE}?"}
    assert called.data.result == f"shared with {COLLEAGUE}"
    [reply] = of(out, ReplyGenerated)
    assert reply.data.text == f"Ask {COLLEAGUE}"
    [step] = [s for s in ledger.steps[e.id].values() if s.kind == "llm"]  # a resumed loop reruns the real call
    assert PHONE in step.data["tool_calls"][0]["arguments"]


async def test_streamed_text_shows_the_values_never_a_placeholder() -> None:
    llm = ScriptedLLM(lambda m: Completion(text="Your number [PHONE_1] is saved, thanks", model="m", provider="t"))
    r, _, sink = reasoner(llm, True, "stream")
    out = await r.answer(context(f"save {PHONE}"))
    partials = [p.data.text for p in sink.events if isinstance(p, ReplyProgress) and p.data.stage == "partial"]
    assert partials and partials[-1] == f"Your number {PHONE} is saved, thanks"
    assert not any("[PHONE" in p for p in partials)
    [reply] = of(out, ReplyGenerated)
    assert reply.data.text == f"Your number {PHONE} is saved, thanks" and reply.data.streamed


async def test_a_redelivered_input_is_answered_from_the_ledger_with_no_second_call() -> None:
    llm = ScriptedLLM(echo)
    r, _, _ = reasoner(llm)
    e = context(f"call me on {PHONE}")
    first = await r.answer(e)
    again = await r.answer(e)
    assert llm.calls == 1 and [o.id for o in again] == [o.id for o in first]
