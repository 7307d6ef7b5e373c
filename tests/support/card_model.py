"""A scripted model that answers with a card (the built-in ``card`` and ``attach`` tools), for end-to-end tests of
how a channel renders the card and brings its presses back."""

from __future__ import annotations

from typing import Any

from tests.support.servers import content_text, tool_call


def card_script(trigger: str, card: dict[str, Any], text: str,
                attachments: tuple[dict[str, Any], ...] = ()) -> Any:
    """A model that answers a user message containing ``trigger`` with the ``card`` (arguments of the card
    tool) and ``attachments`` (of attach), then ``text``; anything else with ``answer: <message>``."""

    def script(body: dict[str, Any]) -> dict[str, Any]:
        last = body["messages"][-1]
        if last["role"] == "tool":
            return {"content": text}
        content = content_text(last["content"])  # a vision model's image parts have no text
        if trigger in content:
            calls = [tool_call("card", card, "call_card")]
            calls += [tool_call("attach", a, f"call_attach_{i}") for i, a in enumerate(attachments)]
            return {"tool_calls": calls}
        return {"content": f"answer: {content}"}

    return script
