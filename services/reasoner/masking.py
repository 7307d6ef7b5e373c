"""A chat model that never sees the personal data of a tenant that masks it (``tenants[].pii_masking``).

One ``MaskedModel`` wraps the model for one inference, with one ``Masker``: every request of its tool loop is
masked with the same placeholders (history, recalled memories, the question, tool results, the arguments of
earlier tool calls), and what comes back — the answer, the streamed text, the arguments of the tool calls —
has them put back before anything else reads it. So the tool loop, the tools, the ledger and the reply see
the real values, as they would without masking, and only the model's endpoint sees placeholders. The agent's
own system prompt (the first message) is the operator's text, not a user's data, and is sent as written.

The placeholders are numbered in the order the values appear in the request, so an inference resumed after a
redelivery, whose requests are built again from the same input, numbers them the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from agentbus.config import PiiKind
from agentbus.pii import Masker
from agentbus.services.reasoner.ports import ChatModel, Completion, Endpoint, OnText


def mask_messages(masker: Masker, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        if i == 0 and m.get("role") == "system":
            out.append(m)
            continue
        m = dict(m)
        content = m.get("content")
        if isinstance(content, str):
            m["content"] = masker.mask(content)
        elif isinstance(content, list):
            m["content"] = [{**p, "text": masker.mask(p["text"])} if p.get("type") == "text" and
                            isinstance(p.get("text"), str) else p for p in content]
        if m.get("tool_calls"):
            m["tool_calls"] = [{**c, "function": {**c["function"], "arguments": masker.mask(
                c["function"]["arguments"])}} for c in m["tool_calls"]]
        out.append(m)
    return out


def restored(masker: Masker, c: Completion) -> Completion:
    return replace(c, text=masker.restore(c.text), tool_calls=tuple(
        replace(t, arguments=masker.restore(t.arguments)) for t in c.tool_calls))


@dataclass
class MaskedModel:
    inner: ChatModel
    masker: Masker

    async def complete(
        self, chain: Sequence[Endpoint], messages: list[dict[str, Any]], *, temperature: float | None,
        max_tokens: int | None, tools: list[dict[str, Any]] | None = None, on_text: OnText | None = None,
    ) -> Completion:
        heard = None
        if on_text is not None:
            reader = on_text

            async def heard_text(text: str) -> None:
                await reader(self.masker.restore_partial(text))

            heard = heard_text
        c = await self.inner.complete(chain, mask_messages(self.masker, messages), temperature=temperature,
                                      max_tokens=max_tokens, tools=tools, on_text=heard)
        return restored(self.masker, c)


def masked(model: ChatModel, kinds: tuple[PiiKind, ...]) -> ChatModel:
    """``model`` for one inference of a tenant that masks ``kinds`` (none: the model itself)."""
    if not kinds:
        return model
    return MaskedModel(model, Masker(kinds, "model"))
