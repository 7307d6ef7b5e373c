"""The fake LLM speaks OpenAI's chat-completions tool-calling protocol: checked with the official client."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.support.servers import FakeLLM, tool_call

TOOLS: list[Any] = [{"type": "function", "function": {
    "name": "now", "description": "current time", "parameters": {"type": "object", "properties": {
        "timezone": {"type": "string"}}}}}]


def script(body: dict[str, Any]) -> dict[str, Any]:
    if body["messages"][-1]["role"] == "tool":
        return {"content": f"it is {body['messages'][-1]['content']}"}
    return {"tool_calls": [tool_call("now", {"timezone": "Asia/Shanghai"}, "call_1")]}


async def test_a_tool_call_round_trip_parses_with_the_official_client() -> None:
    llm = await FakeLLM(script=script).start()
    try:
        client = openai.AsyncOpenAI(base_url=llm.base_url, api_key="test", max_retries=0)
        messages: list[Any] = [{"role": "user", "content": "what time is it?"}]
        first = await client.chat.completions.create(model="m", messages=messages, tools=TOOLS)
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        [call] = choice.message.tool_calls or []
        assert call.type == "function" and call.function.name == "now"
        assert call.function.arguments == '{"timezone":"Asia/Shanghai"}'
        messages += [choice.message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": "09:00"}]
        second = await client.chat.completions.create(model="m", messages=messages, tools=TOOLS)
        assert second.choices[0].message.content == "it is 09:00"
        assert second.choices[0].finish_reason == "stop"
        await client.close()
    finally:
        await llm.stop()


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "q"}, {"role": "tool", "tool_call_id": "nope", "content": "x"}],
    [{"role": "user", "content": "q"},
     {"role": "assistant", "tool_calls": [tool_call("now", {}, "c1")]}, {"role": "user", "content": "again"}],
])
async def test_a_broken_tool_conversation_is_refused_as_a_real_endpoint_does(messages: list[Any]) -> None:
    llm = await FakeLLM(script=script).start()
    try:
        client = openai.AsyncOpenAI(base_url=llm.base_url, api_key="test", max_retries=0)
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(model="m", messages=messages, tools=TOOLS)
        assert llm.calls == []
        await client.close()
    finally:
        await llm.stop()


async def test_the_model_list_and_a_refused_key_parse_with_the_official_client() -> None:
    llm = await FakeLLM(api_key="sk-right").start()
    try:
        client = openai.AsyncOpenAI(base_url=llm.base_url, api_key="sk-right", max_retries=0)
        page = await client.models.list()
        assert [m.id for m in page.data] == ["fake-model"]
        wrong = openai.AsyncOpenAI(base_url=llm.base_url, api_key="sk-wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as err:
            await wrong.models.list()
        assert err.value.code == "invalid_api_key"
        llm.models_status = 404
        with pytest.raises(openai.NotFoundError):
            await client.models.list()
        await client.close()
        await wrong.close()
    finally:
        await llm.stop()
