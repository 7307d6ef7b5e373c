"""MCP sources against real MCP servers (the SDK's own, tests/fakes/mcp_server.py) as processes: over
streamable HTTP on a loopback port, and over stdio started by the client.

No broker or database is needed; these are integration tests because the peer is a real server process.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from agentbus.config import McpServer
from agentbus.events import Chat, ContextAssembled, ContextAssembledData, Turn, utcnow
from agentbus.services.reasoner.tools.base import Tool, ToolContext
from agentbus.services.reasoner.tools.mcp import McpSource
from agentbus.stack.procs import free_port, port_open

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SERVER = [sys.executable, "-m", "tests.fakes.mcp_server"]


def ctx(key: str = "idem-1") -> ToolContext:
    data = ContextAssembledData(agent="a", channel="c", channel_type="webhook", chat=Chat(id="x"),
                                trigger="message", input=Turn(role="user", text="hi", at=utcnow()))
    cause = ContextAssembled.new(data, source="memory", tenant="t", conversation="t/c/x")
    return ToolContext(cause=cause, idempotency_key=key, now=utcnow())


def by_name(source: McpSource) -> dict[str, Tool]:
    return {t.name: t for t in source.tools()}


class HttpServer:
    """The test server as a process on a fixed port, so it can be killed and started again at the same URL."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    async def start(self) -> None:
        self.proc = subprocess.Popen([*SERVER, "http", str(self.port)], cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            if port_open(self.port):
                return
            assert self.proc.poll() is None, "MCP test server exited"
            await asyncio.sleep(0.05)
        raise RuntimeError("MCP test server did not open its port")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    s = HttpServer()
    yield s
    s.kill()


@pytest.fixture
async def http_source(http_server: HttpServer) -> AsyncIterator[McpSource]:
    await http_server.start()
    source = McpSource(McpServer(name="tickets", transport="http", url=http_server.url, timeout_s=10))
    await source.start()
    yield source
    await source.aclose()


def stdio_config(**kw: Any) -> McpServer:
    return McpServer(name="tickets", transport="stdio", command=sys.executable,
                     args=("-m", "tests.fakes.mcp_server", "stdio"), env={"PYTHONPATH": str(ROOT)}, timeout_s=20, **kw)


@pytest.fixture
async def stdio_source() -> AsyncIterator[McpSource]:
    source = McpSource(stdio_config())
    await source.start()
    yield source
    await source.aclose()


def server_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True)
            if "tests.fakes.mcp_server" in " ".join(p.cmdline())]


# -- over streamable HTTP -----------------------------------------------------------------------------


async def test_http_tools_are_listed_with_prefix_schema_and_side_effects(http_source: McpSource) -> None:
    tools = by_name(http_source)
    assert set(tools) == {"tickets__echo", "tickets__add", "tickets__create_ticket", "tickets__broken",
                          "tickets__search_docs"}
    add = tools["tickets__add"]
    assert add.description == "Add two integers."
    assert add.parameters["properties"] == {"a": {"title": "A", "type": "integer"},
                                            "b": {"title": "B", "type": "integer"}}
    assert add.parameters["required"] == ["a", "b"]
    assert add.side_effects is True  # not annotated: the server's setting (default: may change things)
    assert tools["tickets__echo"].side_effects is False  # readOnlyHint
    assert http_source.state().up and http_source.state().error is None and http_source.state().tools == 5


async def test_http_call_with_arguments_returns_text(http_source: McpSource) -> None:
    tools = by_name(http_source)
    result = await tools["tickets__add"].call({"a": 2, "b": 40}, ctx())
    assert (result.content, result.is_error) == ("42", False)
    result = await tools["tickets__search_docs"].call({"query": "vpn"}, ctx())
    assert (result.content, result.is_error) == ("found vpn", False)


async def test_http_concurrent_calls_share_the_session(http_source: McpSource) -> None:
    add = by_name(http_source)["tickets__add"]
    results = await asyncio.gather(*(add.call({"a": i, "b": 1}, ctx()) for i in range(8)))
    assert [r.content for r in results] == [str(i + 1) for i in range(8)]


async def test_http_tool_error_is_an_error_result(http_source: McpSource) -> None:
    result = await by_name(http_source)["tickets__broken"].call({"reason": "disk full"}, ctx())
    assert result.is_error and "broken: disk full" in result.content


async def test_http_bad_arguments_come_back_as_an_error_result(http_source: McpSource) -> None:
    result = await by_name(http_source)["tickets__add"].call({"a": "many"}, ctx())
    assert result.is_error and "validation error" in result.content and "Field required" in result.content
    assert (await by_name(http_source)["tickets__add"].call({"a": 1, "b": 1}, ctx())).content == "2"


async def test_http_idempotency_key_reaches_the_server_in_meta_and_header(http_source: McpSource) -> None:
    tools = by_name(http_source)
    result = await tools["tickets__create_ticket"].call({"title": "vpn down"}, ctx("call-7f3a"))
    assert result.content == "ticket 'vpn down' meta-key=call-7f3a header-key=call-7f3a"


async def test_http_read_only_server_setting_sends_no_key(http_server: HttpServer) -> None:
    await http_server.start()
    source = McpSource(McpServer(name="tickets", transport="http", url=http_server.url, side_effects=False))
    await source.start()
    try:
        ticket = by_name(source)["tickets__create_ticket"]
        assert ticket.side_effects is False
        result = await ticket.call({"title": "x"}, ctx("call-1"))
        assert result.content == "ticket 'x' meta-key=None header-key=None"
    finally:
        await source.aclose()


async def test_http_server_down_at_start_is_not_a_crash(http_server: HttpServer) -> None:
    source = McpSource(McpServer(name="tickets", transport="http", url=http_server.url, timeout_s=5),
                       backoff_s=(0.05, 0.2))
    await source.start()
    try:
        state = source.state()
        assert not state.up and state.tools == 0 and state.error and "ConnectError" in state.error
        assert source.tools() == []
        await http_server.start()
        assert await source.refresh()
        assert "tickets__add" in by_name(source)
    finally:
        await source.aclose()


async def test_http_server_killed_then_back(http_server: HttpServer, http_source: McpSource) -> None:
    add = by_name(http_source)["tickets__add"]
    http_server.kill()
    result = await add.call({"a": 1, "b": 2}, ctx())
    assert result.is_error and result.content.startswith("MCP server 'tickets' is unavailable: ")
    assert not http_source.state().up and http_source.state().error
    assert "tickets__add" in by_name(http_source)  # still known while the server is down
    again = await add.call({"a": 1, "b": 2}, ctx())  # still down: a reconnect is tried and fails
    assert again.is_error and "unavailable" in again.content
    await http_server.start()
    result = await add.call({"a": 1, "b": 2}, ctx())
    assert (result.content, result.is_error) == ("3", False)
    assert http_source.state().up


async def test_http_legacy_session_forgotten_by_a_restart_is_renewed(http_server: HttpServer) -> None:
    await http_server.start()
    source = McpSource(McpServer(name="tickets", transport="http", url=http_server.url), mode="legacy")
    await source.start()
    try:
        add = by_name(source)["tickets__add"]
        assert (await add.call({"a": 1, "b": 2}, ctx())).content == "3"
        http_server.kill()
        await http_server.start()  # a new process: the session the source holds is unknown to it (404)
        result = await add.call({"a": 1, "b": 2}, ctx())
        assert (result.content, result.is_error) == ("3", False)
    finally:
        await source.aclose()


# -- over stdio ---------------------------------------------------------------------------------------


async def test_stdio_lists_calls_and_passes_the_key(stdio_source: McpSource) -> None:
    tools = by_name(stdio_source)
    assert "tickets__echo" in tools and tools["tickets__echo"].side_effects is False
    assert (await tools["tickets__echo"].call({"text": "hi"}, ctx())).content == "echo: hi"
    failed = await tools["tickets__broken"].call({"reason": "no"}, ctx())
    assert failed.is_error and "broken: no" in failed.content
    ticket = await tools["tickets__create_ticket"].call({"title": "t"}, ctx("k-9"))
    assert ticket.content == "ticket 't' meta-key=k-9 header-key=None"  # no headers on stdio
    bad = await tools["tickets__add"].call({"a": 1}, ctx())
    assert bad.is_error and "Field required" in bad.content


async def test_stdio_server_killed_is_restarted(stdio_source: McpSource) -> None:
    [child] = server_children()
    child.kill()
    child.wait(10)
    add = by_name(stdio_source)["tickets__add"]
    result = await add.call({"a": 1, "b": 2}, ctx())
    assert result.is_error and result.content.startswith("MCP server 'tickets' is unavailable: ")
    result = await add.call({"a": 1, "b": 2}, ctx())  # the source starts the server again
    assert (result.content, result.is_error) == ("3", False)
    [again] = server_children()
    assert again.pid != child.pid


async def test_stdio_command_missing_is_down_not_a_crash() -> None:
    source = McpSource(McpServer(name="tickets", transport="stdio", command="/nonexistent/mcp-server"))
    await source.start()
    try:
        assert not source.state().up and source.state().error and source.tools() == []
    finally:
        await source.aclose()


async def test_aclose_leaves_no_server_process() -> None:
    source = McpSource(stdio_config())
    await source.start()
    [child] = server_children()
    await source.aclose()
    assert not child.is_running() and server_children() == []
    assert not source.state().up
    result = await by_name(source)["tickets__add"].call({"a": 1, "b": 2}, ctx())
    assert result.is_error and "unavailable" in result.content
