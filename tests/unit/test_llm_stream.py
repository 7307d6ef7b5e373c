"""Streamed completions: the fake LLM's SSE chunks as the official client reads them, and the reasoner's
client folding them into the same completion a non-streamed call gives."""

from __future__ import annotations

from typing import Any

import openai
from openai.lib.streaming.chat import ChatCompletionStreamState

from agentbus.services.reasoner.llm import ChatClient
from agentbus.services.reasoner.ports import Endpoint
from tests.support.servers import FakeLLM, tool_call

TOOLS: list[Any] = [{"type": "function", "function": {
    "name": "now", "description": "current time", "parameters": {"type": "object", "properties": {
        "timezone": {"type": "string"}}}}}]


def script(body: dict[str, Any]) -> dict[str, Any]:
    if body["messages"][-1]["role"] == "tool":
        return {"content": f"it is {body['messages'][-1]['content']} in Shanghai"}
    return {"tool_calls": [tool_call("now", {"timezone": "Asia/Shanghai"}, "call_1"),
                           tool_call("now", {"timezone": "Europe/Paris"}, "call_2")]}


async def test_the_official_client_reads_the_streamed_text_and_usage() -> None:
    llm = await FakeLLM().start()
    try:
        client = openai.AsyncOpenAI(base_url=llm.base_url, api_key="test", max_retries=0)
        messages: list[Any] = [{"role": "user", "content": "tell me about streams please"}]
        whole = await client.chat.completions.create(model="m", messages=messages)
        state = ChatCompletionStreamState()
        pieces = []
        stream = await client.chat.completions.create(model="m", messages=messages, stream=True,
                                                      stream_options={"include_usage": True})
        async for chunk in stream:
            state.handle_chunk(chunk)
            pieces += [c.delta.content for c in chunk.choices if c.delta.content]
        done = state.get_final_completion()
        assert len(pieces) > 3
        assert done.choices[0].message.content == whole.choices[0].message.content == "".join(pieces)
        assert done.choices[0].finish_reason == "stop"
        assert done.usage is not None and whole.usage is not None
        assert done.usage.completion_tokens == whole.usage.completion_tokens
        await client.close()
    finally:
        await llm.stop()


async def test_the_official_client_assembles_streamed_tool_calls() -> None:
    llm = await FakeLLM(script=script).start()
    try:
        client = openai.AsyncOpenAI(base_url=llm.base_url, api_key="test", max_retries=0)
        state = ChatCompletionStreamState()
        stream = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "time?"}],
                                                      tools=TOOLS, stream=True)
        async for chunk in stream:
            state.handle_chunk(chunk)
        choice = state.get_final_completion().choices[0]
        assert choice.finish_reason == "tool_calls"
        calls = choice.message.tool_calls or []
        assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
            ("call_1", "now", '{"timezone":"Asia/Shanghai"}'), ("call_2", "now", '{"timezone":"Europe/Paris"}')]
        await client.close()
    finally:
        await llm.stop()


async def test_a_streamed_call_gives_the_completion_a_plain_call_gives() -> None:
    llm = await FakeLLM(script=script).start()
    chat = ChatClient(attempts=1, max_connections=4)
    try:
        chain = [Endpoint("m", "m", llm.base_url)]
        seen: list[str] = []

        async def on_text(text: str) -> None:
            seen.append(text)

        first = [{"role": "user", "content": "time?"}]
        plain = await chat.complete(chain, first, temperature=None, max_tokens=None, tools=TOOLS)
        streamed = await chat.complete(chain, first, temperature=None, max_tokens=None, tools=TOOLS,
                                       on_text=on_text)
        assert streamed.tool_calls == plain.tool_calls and len(plain.tool_calls) == 2
        assert streamed.finish_reason == plain.finish_reason == "tool_calls"
        assert seen == []  # a call that only asks for tools has no text to show
        second = [*first, {"role": "assistant", "content": None, "tool_calls": [
            tool_call("now", {}, "call_1")]}, {"role": "tool", "tool_call_id": "call_1", "content": "09:00"}]
        plain = await chat.complete(chain, second, temperature=None, max_tokens=None, tools=TOOLS)
        streamed = await chat.complete(chain, second, temperature=None, max_tokens=None, tools=TOOLS,
                                       on_text=on_text)
        assert streamed.text == plain.text == "it is 09:00 in Shanghai"
        assert (streamed.prompt_tokens, streamed.completion_tokens) == (plain.prompt_tokens, plain.completion_tokens)
        assert seen[-1] == plain.text and len(seen) > 2
        assert all(b.startswith(a) for a, b in zip(seen, seen[1:], strict=False))  # it only grows
        assert [c.get("stream") for c in llm.calls] == [None, True, None, True]
    finally:
        await chat.aclose()
        await llm.stop()
