"""The running summary of a long conversation (an agent's ``memory.summary_after``): memory sends the turns that
fell out of the history window, the reasoner folds them into the summary once enough have gathered, records the
fold as a model call of its own, and every later prompt carries the summary instead of those turns."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from agentbus.config import parse_config
from agentbus.events import (
    Chat,
    ContextAssembled,
    ContextAssembledData,
    InferenceCompleted,
    Replay,
    Sender,
    Turn,
    utcnow,
)
from agentbus.services.reasoner.handlers import Reasoner
from agentbus.services.reasoner.ports import Completion
from agentbus.services.reasoner.summaries import Summary, folded, uncovered
from agentbus.settings import Settings
from tests.support.platform import base_config
from tests.unit.fakes_reasoner import FakeInferenceLedger, ScriptedLLM

T0 = utcnow() - timedelta(hours=1)


class MemorySummaries:
    def __init__(self) -> None:
        self.rows: dict[str, Summary] = {}

    async def get(self, conversation: str) -> Summary | None:
        return self.rows.get(conversation)

    async def save(self, tenant: str, conversation: str, agent: str, summary: Summary) -> bool:
        old = self.rows.get(conversation)
        if old is not None and old.covers_until >= summary.covers_until:
            return False
        self.rows[conversation] = summary
        return True


def turn(i: int, owner: str = "u-7") -> Turn:
    user = i % 2 == 0
    return Turn(role="user" if user else "assistant", text=f"turn {i}", at=T0 + timedelta(minutes=i),
                sender=owner if user else "assistant", owner=owner)


def context(earlier: tuple[Turn, ...], question: str = "what next?") -> ContextAssembled:
    return ContextAssembled.new(
        ContextAssembledData(agent="assistant", channel="acme", channel_type="webhook", chat=Chat(id="c"),
                             trigger="message", input=Turn(role="user", text=question, at=utcnow(), owner="u-7"),
                             history=(turn(100), turn(101)), earlier=earlier, asker=Sender(id="u-7")),
        source="memory", tenant="acme", conversation="acme/acme/c")


def reasoner(summary_after: int, llm: ScriptedLLM, store: MemorySummaries) -> Reasoner:
    cfg = base_config()
    cfg["agents"][0]["memory"] = {"history_turns": 2, "summary_after": summary_after}
    return Reasoner(parse_config(cfg), Settings(), FakeInferenceLedger(), llm, summaries=store)


def summarising(messages: list[dict[str, Any]]) -> Completion:
    if "running summary" in messages[0]["content"]:
        return Completion(text="They talked about turns 0 to 3.", model="m", provider="test", prompt_tokens=50,
                          completion_tokens=9)
    return Completion(text="answered", model="m", provider="test", prompt_tokens=5, completion_tokens=1)


def texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in messages if isinstance(m["content"], str)]


async def test_turns_gathered_past_the_window_are_folded_once_and_the_prompt_carries_the_summary() -> None:
    llm, store = ScriptedLLM(script=summarising), MemorySummaries()
    r = reasoner(4, llm, store)
    e = context(tuple(turn(i) for i in range(4)))
    outputs = await r.answer(e)
    fold, answer = llm.requests[0][0], llm.requests[1][0]
    assert "Summary so far:\n(none yet)" in fold[1]["content"] and "u-7: turn 0" in fold[1]["content"]
    assert "assistant: turn 3" in fold[1]["content"]
    shown = texts(answer)
    assert any("Summary of this conversation" in t and "turns 0 to 3" in t for t in shown)
    assert not any(t.startswith("turn 0") for t in shown) and "turn 100" in shown  # folded turns left out
    kept = store.rows["acme/acme/c"]
    assert (kept.turns, kept.covers_until, kept.owners) == (4, turn(3).at, ("u-7",))
    calls = [e for e in outputs if isinstance(e, InferenceCompleted)]
    assert len(calls) == 2 and calls[0].data.usage.input_tokens == 50 and calls[0].data.output_text is None
    assert calls[0].id != calls[1].id
    assert await r.answer(e) == outputs and llm.calls == 2  # a redelivery: the ledger answers
    await r.answer(context(tuple(turn(i) for i in range(4)), "and then?"))  # the next message: covered already
    assert llm.calls == 3 and any("turns 0 to 3" in t for t in texts(llm.requests[2][0]))


async def test_fewer_than_summary_after_are_sent_as_turns_and_covered_ones_are_not_repeated() -> None:
    llm, store = ScriptedLLM(script=summarising), MemorySummaries()
    store.rows["acme/acme/c"] = folded(None, [turn(0), turn(1)], "Earlier: turns 0 and 1.")
    r = reasoner(4, llm, store)
    await r.answer(context(tuple(turn(i) for i in range(4))))  # 0 and 1 covered; 2 and 3 are not yet four
    assert llm.calls == 1
    shown = texts(llm.requests[0][0])
    assert any("Earlier: turns 0 and 1." in t for t in shown)
    assert "turn 2" in shown and "turn 3" in shown and "turn 0" not in shown and "turn 1" not in shown
    assert uncovered(store.rows["acme/acme/c"], [turn(i) for i in range(4)]) == [turn(2), turn(3)]


async def test_a_failed_fold_sends_the_turns_and_a_replay_never_folds() -> None:
    llm, store = ScriptedLLM(), MemorySummaries()
    r = reasoner(2, llm, store)

    def failing(messages: list[dict[str, Any]]) -> Completion:
        if "running summary" in messages[0]["content"]:
            raise RuntimeError("model away")
        return Completion(text="answered", model="m", provider="test")

    llm.script = failing
    await r.answer(context((turn(0), turn(1))))
    assert store.rows == {} and "turn 0" in texts(llm.requests[-1][0])
    llm.script = summarising
    replayed = context((turn(0), turn(1))).model_copy(update={"replay": Replay(run="r1", rerun_llm=True)})
    await r.answer(replayed)
    assert store.rows == {}  # a replay does not change what live conversations remember


async def test_without_summary_after_nothing_is_folded() -> None:
    llm, store = ScriptedLLM(script=summarising), MemorySummaries()
    await reasoner(0, llm, store).answer(context(tuple(turn(i) for i in range(6))))
    assert llm.calls == 1 and store.rows == {} and "turn 5" in texts(llm.requests[0][0])
