"""A card end to end on the generic webhook: the model's card and image reach the receiver in the signed push,
and a press of a button comes back signed as a message of the same chat, answered once, also when redelivered.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from agentbus.cli.tools import signed_request
from tests.support.platform import Infra, Platform, base_config, run_platform, secret_for
from tests.support.remembered import until_remembered
from tests.support.servers import FakeLLM, WebhookSink, content_text, tool_call

pytestmark = pytest.mark.e2e

CARD = {"title": "Room 4", "text": "Room 4 is free at 10:00.",
        "buttons": [{"label": "Yes", "value": "book room 4", "style": "primary"},
                    {"label": "No", "value": "do not book"}]}
PLAN = {"url": "https://files.example.com/plan.png", "kind": "image", "name": "plan.png"}


def model(body: dict[str, Any]) -> dict[str, Any]:
    """Asks for a card and an image, then asks the question; answers a press by what its value says."""
    messages = body["messages"]
    if messages[-1]["role"] == "tool":
        return {"content": "Shall I book room 4?"}
    said = content_text(messages[-1]["content"])
    if said in ("book room 4", "do not book"):
        return {"content": f"Done: {said}."}
    if said.startswith("Book a room"):
        return {"tool_calls": [tool_call("card", CARD, "call_card"), tool_call("attach", PLAN, "call_attach")]}
    return {"content": f"answer: {said}"}



@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[FakeLLM]:
    f = await FakeLLM(script=model).start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, llm: FakeLLM, sink: WebhookSink) -> AsyncIterator[Platform]:
    assert sink.server is not None
    config = base_config(sink.server.url, llm.base_url)
    config["agents"][0]["tools"] = ["card", "attach"]
    async with run_platform(infra, config) as p:
        yield p


async def send(p: Platform, payload: dict[str, Any], msg_id: str | None = None) -> httpx.Response:
    body, headers = signed_request(secret_for("acme"), payload, msg_id)
    async with httpx.AsyncClient() as c:
        return await c.post(f"{p.ingress_url}/v1/webhooks/acme", content=body, headers=headers)


async def test_a_card_goes_out_and_a_press_comes_back_answered_once(
        platform: Platform, llm: FakeLLM, sink: WebhookSink) -> None:
    conv = f"team-{uuid.uuid4().hex[:6]}"
    asked = await send(platform, {"conversation": conv, "sender": {"id": "alice"}, "text": "Book a room please",
                                  "chat_type": "group", "mentioned": True})
    assert asked.status_code == 202, asked.text
    [push] = await sink.wait_for(lambda m: m["conversation"] == conv)
    assert push["text"] == "Shall I book room 4?", "the receiver renders the card: the text is the model's"
    assert push["card"] == {**CARD, "buttons": [CARD["buttons"][0], {**CARD["buttons"][1], "style": "default"}]}
    [image] = push["attachments"]
    assert (image["kind"], image["url"], image["name"]) == ("image", PLAN["url"], "plan.png")

    # bob presses Yes in the group once memory has kept the card (the push and memory's turn come from the
    # same reply event, each on its own time): no mention, no text, the value is what the model reads
    await until_remembered(platform, "acme", conv, "Shall I book room 4?")
    press = {"conversation": conv, "sender": {"id": "bob", "name": "Bob"}, "chat_type": "group",
             "message_id": f"press-{uuid.uuid4().hex[:8]}",
             "action": {"value": "book room 4", "label": "Yes", "card_message_id": push["reply_id"]}}
    delivery = f"msg_{uuid.uuid4().hex}"
    first = await send(platform, press, delivery)
    assert first.status_code == 202 and first.headers["x-agentbus-outcome"] == "published", first.text
    again = await send(platform, press, delivery)  # the sender redelivers the same press (same webhook-id)
    assert again.status_code == 202 and again.headers["x-agentbus-outcome"] == "duplicate"
    [answer] = await sink.wait_for(lambda m: m["conversation"] == conv and m["text"] == "Done: book room 4.")
    assert "card" not in answer and "attachments" not in answer
    [call] = llm.calls_with("book room 4")
    assert content_text(call["messages"][-1]["content"]) == "book room 4"
    history = " ".join(content_text(m.get("content")) for m in call["messages"][:-1])
    assert "Yes = book room 4" in history, "the model knows what the value of the button meant"

    # a bad press is refused with its reason, nothing published
    bad = await send(platform, {**press, "message_id": "press-bad", "action": {"value": "x", "colour": "red"}})
    assert bad.status_code == 422 and "colour" in bad.text

    # a later message of the chat is answered after the press: by then a second answer to it would be here
    await send(platform, {"conversation": conv, "sender": {"id": "bob"}, "text": "thanks", "mentioned": True,
                          "chat_type": "group"})
    await sink.wait_for(lambda m: m["conversation"] == conv and m["text"] == "answer: thanks")
    assert [m["text"] for m in sink.received if m["conversation"] == conv] == [
        "Shall I book room 4?", "Done: book room 4.", "answer: thanks"]
    assert not sink.rejected
