"""The ``card`` and ``attach`` tools: the reply carries what the model asked for, the same when the answer is
reused from the ledger, and a v1 reply read from the log upcasts to the newest version without parts."""

from __future__ import annotations

from typing import Any

from agentbus.events import Button, ReplyGenerated, ReplyGeneratedDataV1, ReplyGeneratedV1, parse_event
from agentbus.services.reasoner.ports import Completion
from agentbus.services.reasoner.tools.card import AttachTool, CardTool
from tests.unit.fakes_reasoner import ScriptedLLM, asks
from tests.unit.test_tool_loop import context, of, reasoner, text


def script(*calls: tuple[str, dict[str, Any]]) -> Any:
    def answer(messages: list[dict[str, Any]]) -> Completion:
        return text("Shall I book it?") if messages[-1]["role"] == "tool" else asks(*calls)
    return answer


CARD = ("card", {"title": "Room 4", "buttons": [{"label": "Yes", "value": "book room 4", "style": "primary"},
                                                 {"label": "No", "value": "do not book"}]})
IMAGE = ("attach", {"url": "https://example.com/plan.png", "kind": "image", "name": "plan.png"})


async def test_the_reply_carries_the_card_and_the_attachment_asked_for() -> None:
    r, ledger = reasoner(ScriptedLLM(script(CARD, IMAGE)), CardTool(), AttachTool(), tools=["card", "attach"])
    e = context()
    out = await r.answer(e)
    [reply] = of(out, ReplyGenerated)
    assert reply.version == 3 and reply.data.text == "Shall I book it?"
    assert reply.data.card is not None and reply.data.card.title == "Room 4"
    assert reply.data.card.buttons == (Button(label="Yes", value="book room 4", style="primary"),
                                       Button(label="No", value="do not book"))
    [image] = reply.data.attachments
    assert image.kind == "image" and image.url == "https://example.com/plan.png" and image.name == "plan.png"
    # the processed record lost: rebuilt from the recorded steps, the reply is the same event
    ledger.processed.clear()
    [again] = of(await r.answer(e), ReplyGenerated)
    assert again.id == reply.id and again.data == reply.data


async def test_a_card_call_the_model_got_wrong_is_an_error_it_reads_and_no_card() -> None:
    bad = ("card", {"buttons": []})
    r, _ = reasoner(ScriptedLLM(script(bad)), CardTool(), tools=["card"])
    out = await r.answer(context())
    [reply] = of(out, ReplyGenerated)
    assert reply.data.card is None and reply.data.attachments == ()
    plain_http = ("attach", {"url": "http://example.com/x.png"})
    r, _ = reasoner(ScriptedLLM(script(plain_http)), AttachTool(), tools=["attach"])
    [reply] = of(await r.answer(context()), ReplyGenerated)
    assert reply.data.attachments == ()


def test_a_v1_reply_upcasts_to_the_newest_without_parts() -> None:
    e = context()
    old = e.follow(ReplyGeneratedV1, ReplyGeneratedDataV1(
        agent="assistant", channel="acme", channel_type="webhook", chat=e.data.chat, text="hi", model="m"),
        source="reasoner", step="reply")
    new = parse_event(old.to_bytes())
    assert isinstance(new, ReplyGenerated) and new.version == 3 and new.id == old.id
    assert new.data.text == "hi" and new.data.card is None and new.data.attachments == () and not new.data.streamed
