"""What the model sees of MCP tools: names it can use, and results as text."""

from __future__ import annotations

from mcp import types

from agentbus.services.reasoner.tools.base import NAME
from agentbus.services.reasoner.tools.mcp_results import parameters, read_only, reason, tool_names, tool_result


def test_names_are_prefixed_and_sanitised() -> None:
    names = tool_names("tickets", ["add", "search.docs", "找", "a b"])
    assert names["add"] == "tickets__add"
    assert names["search.docs"] == "tickets__search_docs"
    assert names["找"] == "tickets___"
    assert names["a b"] == "tickets__a_b"
    assert all(NAME.match(n) for n in names.values())


def test_names_that_clash_or_are_too_long_get_a_hash_and_stay_distinct() -> None:
    long = "x" * 80
    names = tool_names("tickets", ["a.b", "a_b", long, long + "y"])
    assert names["a.b"] == "tickets__a_b"
    assert names["a_b"].startswith("tickets__a_b_") and names["a_b"] != names["a.b"]
    assert len(names[long]) == 64 and len(names[long + "y"]) == 64 and names[long] != names[long + "y"]
    assert len(set(names.values())) == 4 and all(NAME.match(n) for n in names.values())


def tool(**kw: object) -> types.Tool:
    return types.Tool.model_validate({"name": "t", "inputSchema": {"type": "object", "title": "tArguments"}, **kw})


def test_read_only_needs_the_hint_set_true() -> None:
    assert read_only(tool(annotations={"readOnlyHint": True}))
    assert not read_only(tool(annotations={"readOnlyHint": False}))
    assert not read_only(tool(annotations={"destructiveHint": False}))
    assert not read_only(tool())


def test_parameters_drop_the_generated_title() -> None:
    assert parameters(tool()) == {"type": "object"}


def result(**kw: object) -> types.CallToolResult:
    return types.CallToolResult.model_validate(kw)


def test_text_blocks_are_joined_and_structured_content_is_not_repeated() -> None:
    r = tool_result("s", "t", result(content=[{"type": "text", "text": "3"}], structuredContent={"result": 3}))
    assert (r.content, r.is_error) == ("3", False)
    r = tool_result("s", "t", result(content=[{"type": "text", "text": '{"a": 1}'}], structuredContent={"a": 1}))
    assert r.content == '{"a": 1}'


def test_structured_content_the_text_does_not_say_is_added_as_json() -> None:
    r = tool_result("s", "t", result(content=[{"type": "text", "text": "two tickets"}],
                                     structuredContent={"ids": [1, 2]}))
    assert r.content == 'two tickets\n{"ids":[1,2]}'
    assert tool_result("s", "t", result(content=[], structuredContent={"ok": True})).content == '{"ok":true}'


def test_other_blocks_are_described_not_dumped() -> None:
    r = tool_result("s", "t", result(content=[
        {"type": "image", "data": "AAAA", "mimeType": "image/png"},
        {"type": "resource", "resource": {"uri": "file:///a.txt", "text": "hello"}},
        {"type": "resource_link", "uri": "https://x/1", "name": "one"},
    ]))
    assert r.content == "[image image/png, 3 bytes, not shown]\n[resource file:///a.txt]\nhello\n[link https://x/1]"


def test_is_error_becomes_an_error_result_with_a_message_even_when_empty() -> None:
    r = tool_result("s", "t", result(content=[{"type": "text", "text": "no such ticket"}], isError=True))
    assert (r.content, r.is_error) == ("no such ticket", True)
    r = tool_result("s", "t", result(content=[], isError=True))
    assert r.is_error and r.content == "MCP tool 't' on server 's' failed"


def test_reason_names_the_first_error_inside_exception_groups() -> None:
    err = ExceptionGroup("outer", [ExceptionGroup("inner", [ConnectionRefusedError("refused")])])
    assert reason(err) == "ConnectionRefusedError: refused"
    assert reason(TimeoutError()) == "TimeoutError"
