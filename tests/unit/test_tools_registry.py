"""The tool registry: which tools each agent gets (exact names, ``<server>__*`` for an MCP server's), and
start-up's check that every name in the configuration names a tool."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from agentbus.config import HttpFetchSettings, PlatformConfig, parse_config
from agentbus.services.reasoner.tools.base import Tool, ToolContext, ToolResult
from agentbus.services.reasoner.tools.http_fetch import HttpFetch
from agentbus.services.reasoner.tools.registry import ToolRegistry, builtin_tools


class Stub:
    def __init__(self, name: str, side_effects: bool = False) -> None:
        self.name, self.description, self.side_effects = name, f"the {name} tool", side_effects
        self.parameters: dict[str, Any] = {"type": "object", "properties": {}}

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        return ToolResult(self.name)


class Server:
    """An MCP source whose listing changes (a server that reconnects with new tools)."""

    def __init__(self, name: str, tools: Sequence[str]) -> None:
        self.name, self.listed = name, list(tools)

    def tools(self) -> list[Tool]:
        return [Stub(f"{self.name}__{t}", side_effects=True) for t in self.listed]


def config(*agent_tools: Sequence[str], servers: Sequence[str] = ("crm", "wiki"), **http: Any) -> PlatformConfig:
    return parse_config({
        "tenants": [{"id": "acme"}],
        "agents": [{"id": f"a{i}", "tools": list(t), "tool_settings": {"http_fetch": http}}
                   for i, t in enumerate(agent_tools)],
        "mcp_servers": [{"name": s, "transport": "http", "url": f"http://{s}.internal/mcp"} for s in servers],
    })


def registry(crm: Server | None = None) -> ToolRegistry:
    wiki_tools: list[Tool] = [Stub("wiki__search"), Stub("wiki__page")]
    return ToolRegistry(builtin_tools(), mcp_sources=[crm or Server("crm", ["find", "update"]), wiki_tools],
                        plugins=[Stub("weather")])


def test_an_agent_gets_exactly_the_tools_it_names_in_its_order() -> None:
    cfg = config(["weather", "now", "crm__find", "wiki__*"], [], ["now", "now", "wiki__*", "wiki__search"])
    reg = registry()
    assert [t.name for t in reg.for_agent(cfg.agents[0])] == [
        "weather", "now", "crm__find", "wiki__page", "wiki__search"]
    assert reg.for_agent(cfg.agents[1]) == []
    assert [t.name for t in reg.for_agent(cfg.agents[2])] == ["now", "wiki__page", "wiki__search"]
    assert reg.names == ["attach", "card", "http_fetch", "now", "weather"]


def test_a_server_pattern_takes_what_the_server_lists_now() -> None:
    crm = Server("crm", ["find"])
    reg, agent = registry(crm), config(["crm__*", "crm__update"]).agents[0]
    assert [t.name for t in reg.for_agent(agent)] == ["crm__find"]  # crm__update is not listed (yet)
    crm.listed = ["update", "find", "delete"]
    assert [t.name for t in reg.for_agent(agent)] == ["crm__delete", "crm__find", "crm__update"]
    crm.listed = []
    assert reg.for_agent(agent) == []


def test_http_fetch_is_bound_to_the_agent_s_settings() -> None:
    cfg = config(["http_fetch"], ["http_fetch"], allow_hosts=["*.example.com"], max_bytes=5000, timeout_s=3)
    reg = registry()
    tool = reg.for_agent(cfg.agents[0])[0]
    assert isinstance(tool, HttpFetch)
    assert tool.settings == HttpFetchSettings(allow_hosts=("*.example.com",), max_bytes=5000, timeout_s=3)
    assert reg.for_agent(cfg.agents[1])[0] is not tool  # each agent its own copy


def test_validation_names_every_unknown_tool_by_its_key() -> None:
    cfg = config(["now", "nwo"], ["wiki__*", "crm__find", "crm__fnid", "weather", "Weather"], ["wiki__"])
    assert registry().validate(cfg) == [
        "agents[0].tools[1]: unknown tool 'nwo' (known: attach, card, http_fetch, now, weather)",
        "agents[1].tools[2]: unknown tool 'crm__fnid' (MCP server 'crm' has no tool 'fnid')",
        "agents[1].tools[4]: unknown tool 'Weather' (known: attach, card, http_fetch, now, weather)",
        "agents[2].tools[0]: unknown tool 'wiki__' (MCP server 'wiki' has no tool '')",
    ]


def test_tools_of_a_server_that_lists_nothing_yet_are_not_judged() -> None:
    """A server that is not connected at start-up cannot say which tools it has; its name must be declared."""
    reg = registry(Server("crm", []))
    assert reg.validate(config(["crm__anything", "crm__*"])) == []
    cfg = config(["ghost__x"], servers=("crm", "wiki", "ghost"))
    assert reg.validate(cfg) == []


def test_a_valid_configuration_has_no_problems() -> None:
    assert registry().validate(config(["now", "http_fetch", "weather", "crm__*", "wiki__page"], [])) == []


def test_an_undeclared_server_is_reported_when_the_configuration_did_not_catch_it() -> None:
    cfg = config(["crm__find"])
    bare = PlatformConfig.model_validate({"tenants": cfg.tenants, "agents": cfg.agents})  # no mcp_servers
    assert registry().validate(bare) == [
        "agents[0].tools[0]: unknown MCP server 'crm' (declare it under mcp_servers)"]


@pytest.mark.parametrize(("builtins", "plugins", "error"), [
    (["now", "http_fetch"], ["now"], "two tools named 'now'"),
    (["now", "now"], [], "two tools named 'now'"),
    (["now"], ["a__b"], "tool name 'a__b': '__' is reserved for MCP tools"),
])
def test_two_tools_with_one_name_are_a_wiring_error(builtins: list[str], plugins: list[str], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        ToolRegistry([Stub(n) for n in builtins], plugins=[Stub(n) for n in plugins])
