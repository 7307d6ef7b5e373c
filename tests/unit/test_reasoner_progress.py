"""The reasoner's reply.progress: working before each model call, partials with progress: stream, ids derived
from the input, none for refusals, replays or channels with progress: off, and the ledger still in charge."""

from __future__ import annotations

from typing import Any

import pytest

from agentbus.config import PlatformConfig, parse_config
from agentbus.events import (
    Chat,
    ContextAssembled,
    ContextAssembledData,
    Replay,
    ReplyGenerated,
    ReplyProgress,
    Turn,
    utcnow,
)
from agentbus.ids import derive_id
from agentbus.services.reasoner.handlers import Reasoner
from agentbus.services.reasoner.ports import Completion
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


def config(progress: str) -> PlatformConfig:
    raw = base_config()
    raw["agents"][0]["tools"] = ["lookup"]
    raw["channels"].append({"id": "tg", "type": "telegram", "tenant": "acme", "agent": "assistant",
                            "mode": "stream", "bot_token": {"env": "TEST_TG_TOKEN", "default": "1:abc"},
                            "progress": progress})
    return parse_config(raw)


def context(text: str = "tell me a story", refusal: str | None = None) -> ContextAssembled:
    return ContextAssembled.new(
        ContextAssembledData(agent="assistant", channel="tg", channel_type="telegram", chat=Chat(id="42"),
                             trigger="message", input=Turn(role="user", text=text, at=utcnow()),
                             reply_route={"chat_id": 42, "message_id": 7}, in_reply_to="7", refusal=refusal),
        source="memory", tenant="acme", conversation="acme/tg/42",
    )


def reasoner(progress: str, llm: ScriptedLLM, *tools: Any,
             sink: FakeProgressSink | None = None) -> tuple[Reasoner, FakeProgressSink, FakeInferenceLedger]:
    sink, ledger = sink or FakeProgressSink(), FakeInferenceLedger()
    settings = Settings(reasoner_stream_interval_s=0.0)  # every growth of the text is a partial
    return Reasoner(config(progress), settings, ledger, llm, FakeToolbox(list(tools)), progress=sink), sink, ledger


def long_answer(messages: list[dict[str, Any]]) -> Completion:
    if messages[-1]["role"] == "tool":
        return Completion(text="once upon a time there was a broker", model="m", provider="test")
    return asks(("lookup", {"q": "story"}))


async def test_typing_publishes_working_before_each_model_call_with_derived_ids() -> None:
    r, sink, _ = reasoner("typing", ScriptedLLM(long_answer), RecordingTool())
    e = context()
    out = await r.answer(e)
    assert [(p.data.stage, p.data.seq) for p in sink.events] == [("working", 0), ("working", 1)]
    assert [p.id for p in sink.events] == [derive_id(e.id, "progress-0"), derive_id(e.id, "progress-1")]
    assert all(isinstance(p, ReplyProgress) and p.data.in_reply_to == "7" and p.causation_id == e.id
               for p in sink.events)
    [reply] = [o for o in out if isinstance(o, ReplyGenerated)]
    assert reply.data.streamed is False
    assert r.llm.streamed == [False, False]  # type: ignore[attr-defined]


async def test_stream_publishes_partials_and_the_final_reply_carries_the_whole_text() -> None:
    llm = ScriptedLLM(long_answer)
    r, sink, ledger = reasoner("stream", llm, RecordingTool())
    e = context()
    out = await r.answer(e)
    stages = [p.data.stage for p in sink.events]
    assert stages[:2] == ["working", "working"] and set(stages[2:]) == {"partial"}
    assert [p.data.seq for p in sink.events] == list(range(len(sink.events)))
    partials = [p.data.text for p in sink.events if p.data.stage == "partial"]
    [reply] = [o for o in out if isinstance(o, ReplyGenerated)]
    assert reply.data.text == "once upon a time there was a broker" == partials[-1]
    assert reply.data.streamed is True and len(partials) == 8
    assert llm.streamed == [True, True]  # tool calls stream too
    # redelivered: the recorded outputs, no model call, nothing streamed again
    published = len(sink.events)
    assert await r.answer(e) == out
    ledger.processed.clear()  # even with the processed record lost, the recorded inference answers
    again = await r.answer(e)
    assert llm.calls == 2 and len(sink.events) == published
    assert [o.id for o in again if isinstance(o, ReplyGenerated)] == [reply.id]


async def test_the_answer_is_the_same_streamed_or_not() -> None:
    plain, _, _ = reasoner("typing", ScriptedLLM(long_answer), RecordingTool())
    streamed, _, _ = reasoner("stream", ScriptedLLM(long_answer), RecordingTool())
    e = context()
    [a] = [o for o in await plain.answer(e) if isinstance(o, ReplyGenerated)]
    [b] = [o for o in await streamed.answer(e) if isinstance(o, ReplyGenerated)]
    assert a.data.text == b.data.text and a.id == b.id and (a.data.streamed, b.data.streamed) == (False, True)


async def test_partials_wait_for_the_interval() -> None:
    llm = ScriptedLLM(long_answer)
    sink, ledger = FakeProgressSink(), FakeInferenceLedger()
    r = Reasoner(config("stream"), Settings(reasoner_stream_interval_s=3600.0), ledger, llm,
                 FakeToolbox([RecordingTool()]), progress=sink)
    await r.answer(context())
    assert [p.data.stage for p in sink.events] == ["working", "working", "partial"]  # the first, then none


@pytest.mark.parametrize("case", ["refusal", "replay", "off", "job"])
async def test_no_progress_for_refusals_replays_jobs_or_channels_with_it_off(case: str) -> None:
    r, sink, _ = reasoner("off" if case == "off" else "stream", ScriptedLLM(long_answer), RecordingTool())
    e = context(refusal="Not here." if case == "refusal" else None)
    if case == "replay":
        await r.answer(e)
        sink.events.clear()
        e = e.model_copy(update={"replay": Replay(run="r1", rerun_llm=True)})
    if case == "job":
        e = e.model_copy(update={"data": e.data.model_copy(update={"trigger": "job"})})
    out = await r.answer(e)
    assert sink.events == [] and any(isinstance(o, ReplyGenerated) for o in out)


async def test_a_progress_that_cannot_be_published_never_stops_the_answer() -> None:
    r, sink, _ = reasoner("stream", ScriptedLLM(long_answer), RecordingTool(),
                          sink=FakeProgressSink(fail=ConnectionError("broker away")))
    [reply] = [o for o in await r.answer(context()) if isinstance(o, ReplyGenerated)]
    assert reply.data.text == "once upon a time there was a broker" and reply.data.streamed is False


def test_stream_is_refused_for_a_channel_type_that_cannot_edit_a_message() -> None:
    raw = base_config()
    raw["channels"][0]["progress"] = "stream"  # a signed webhook: a push cannot be edited
    with pytest.raises(Exception, match="cannot edit a sent message"):
        parse_config(raw)
    raw["channels"][0]["progress"] = "sometimes"
    with pytest.raises(Exception, match="progress"):
        parse_config(raw)
    assert config("stream").channel("tg").progress == "stream"  # type: ignore[union-attr]
    assert parse_config(base_config()).channel("acme").progress == "typing"  # type: ignore[union-attr]
