"""Recalled memories reach the model attributed: who said each, where and when."""

from __future__ import annotations

from datetime import UTC, datetime

from agentbus.config import parse_config
from agentbus.events import Chat, ContextAssembledData, Recall, Turn
from agentbus.services.reasoner.llm import echo_answer
from agentbus.services.reasoner.prompt import attribution, build_messages
from tests.support.platform import base_config

AT = datetime(2026, 11, 30, 15, 4, tzinfo=UTC)


def test_each_memory_says_who_where_and_when() -> None:
    assert attribution(Recall(text="x", score=0.9, at=AT, sender="u1", sender_name="alice", channel="slack",
                              chat="C1", chat_name="team", chat_type="group")) == (
        "[2026-11-30, alice in #team on slack]")
    assert attribution(Recall(text="x", score=0.9, at=AT, sender="u1", chat="D1", chat_type="direct")) == (
        "[2026-11-30, u1 in a direct chat]")
    assert attribution(Recall(text="x", score=0.9, role="assistant", at=AT, sender="assistant", chat="D1",
                              chat_type="direct", channel="acme")) == (
        "[2026-11-30, you (the assistant) in a direct chat on acme]")
    assert attribution(Recall(text="x", score=0.9, kind="fact", at=AT, sender="u1")) == "[2026-11-30, fact about u1]"
    assert attribution(Recall(text="x", score=0.9)) == "[undated, someone (sender not recorded)]"


def test_the_prompt_shows_the_attribution_before_each_recalled_text() -> None:
    agent = parse_config(base_config()).agent("assistant")
    assert agent is not None
    ctx = ContextAssembledData(
        agent="assistant", channel="acme", channel_type="webhook", chat=Chat(id="D2"), trigger="message",
        input=Turn(role="user", text="what is my locker code?", at=AT),
        memories=(Recall(text="my locker code is 4417", score=0.9, at=AT, sender="u1", sender_name="alice",
                         chat="team", chat_name="team", chat_type="group"),))
    messages = build_messages(agent, ctx)
    [note] = [m["content"] for m in messages if m["role"] == "system" and "Relevant memories" in m["content"]]
    assert note == ("Relevant memories from earlier conversations:\n"
                    "- [2026-11-30, alice in #team] my locker code is 4417")
    assert "1 recalled memory(ies)" in echo_answer(messages)
