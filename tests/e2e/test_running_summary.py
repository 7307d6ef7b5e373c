"""A long conversation through the whole platform, with a running summary (``memory.summary_after``): turns that
fall out of the two-turn history window reach the model as a summary it wrote itself, the summarising call is
its own inference, and a forgotten person's summary is gone from the reasoner's schema."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from agentbus.cli.tools import signed_request
from tests.support.platform import Infra, Platform, base_config, run_platform, secret_for
from tests.support.remembered import until_remembered
from tests.support.servers import FakeLLM, WebhookSink, content_text

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def sink() -> AsyncIterator[WebhookSink]:
    s = await WebhookSink({"acme": secret_for("acme"), "globex": secret_for("globex")}).start()
    yield s
    await s.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, llm: FakeLLM, sink: WebhookSink) -> AsyncIterator[Platform]:
    assert sink.server is not None
    doc = base_config(sink.server.url, llm.base_url)
    doc["agents"][0]["memory"] = {"history_turns": 2, "summary_after": 2, "recall_top_k": 0}
    async with run_platform(infra, doc) as p:
        yield p


async def ask(p: Platform, sink: WebhookSink, chat: str, sender: str, text: str) -> None:
    body, headers = signed_request(secret_for("acme"), {"conversation": chat, "text": text,
                                                        "sender": {"id": sender, "name": sender}})
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{p.ingress_url}/v1/webhooks/acme", content=body, headers=headers)
    assert r.status_code == 202, r.text
    await sink.wait_for(lambda m: m["conversation"] == chat and text in m["text"])
    await until_remembered(p, "acme", chat, text)  # the next message must see this one's reply


def system_texts(call: dict[str, Any]) -> list[str]:
    return [m["content"] for m in call["messages"] if m["role"] == "system" and isinstance(m["content"], str)]


async def test_turns_past_the_window_reach_the_model_as_its_own_summary(
        platform: Platform, llm: FakeLLM, sink: WebhookSink) -> None:
    tag = uuid.uuid4().hex[:6]
    chat, who = f"long-{tag}", f"ana-{tag}"
    said = [f"my project is called Heron-{tag}", f"it ships in March ({tag})", f"what ships? ({tag})"]
    for text in said:
        await ask(platform, sink, chat, who, text)
    folds = [c for c in llm.calls if any("running summary" in s for s in system_texts(c))]
    assert len(folds) == 1, [system_texts(c) for c in llm.calls if tag in str(c)]
    assert f"{who}: {said[0]}" in folds[0]["messages"][-1]["content"]  # the turns that left the window
    [third] = [c for c in llm.calls if c not in folds and c["messages"][-1]["content"] == said[2]]
    summary = [s for s in system_texts(third) if s.startswith("Summary of this conversation")]
    assert summary and f"Heron-{tag}" in summary[0], system_texts(third)
    turns = [m["content"] for m in third["messages"] if m["role"] in ("user", "assistant")]
    assert said[0] not in turns and said[1] in turns  # the first exchange only through the summary

    async with httpx.AsyncClient(base_url=platform.url_of("reasoner"), timeout=10) as http:
        rows = (await http.get("/v1/inferences", params={"tenant": "acme", "limit": 50})).json()["items"]
    newest = [r for r in rows if r["conversation"].endswith(chat)][0]  # the third message's (newest first)
    words = [sum(len(content_text(m["content"]).split()) for m in c["messages"]) for c in (third, folds[0])]
    assert newest["prompt_tokens"] == sum(words), (newest, words)  # its row counts what the fold cost too
