"""Which tools exist, and which of them one agent may call (its ``tools`` list in ``agentbus.yaml``).

Three kinds: built-ins and plugins are named as they are; MCP servers' tools are named
``<server>__<tool>`` and an agent takes all of one server's with ``<server>__*``. MCP tools are asked for
each time (a server's list changes when it reconnects or announces new tools), the others are fixed at
start. A tool with per-agent settings (``http_fetch``'s allowed hosts and limits) has a ``bind(agent)``
giving the agent its own copy. ``validate`` is what start-up runs so that a typo in a tool name stops the
service with the key named, instead of an agent silently missing a tool.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from agentbus.config import Agent, PlatformConfig
from agentbus.logs import get_logger
from agentbus.services.reasoner.tools.base import Tool

log = get_logger(__name__)
MCP_SEPARATOR = "__"


@runtime_checkable
class ToolSource(Protocol):
    """Tools that can change while the service runs (an MCP server's), named ``<server>__<tool>``."""

    def tools(self) -> Sequence[Tool]: ...


@runtime_checkable
class AgentBound(Protocol):
    """A tool whose behaviour depends on the agent's settings."""

    def bind(self, agent: Agent) -> Tool: ...


def builtin_tools(**http_fetch: Any) -> list[Tool]:
    """The built-in tools that need no service port: ``now``, ``http_fetch`` (keyword arguments go to
    ``HttpFetch``), and ``card`` and ``attach``, which shape the reply (every channel renders them, natively or
    as text). The built-ins that need the service's ports are added by its bootstrap."""
    from agentbus.services.reasoner.tools.card import AttachTool, CardTool
    from agentbus.services.reasoner.tools.http_fetch import HttpFetch
    from agentbus.services.reasoner.tools.now import Now

    return [Now(), HttpFetch(**http_fetch), CardTool(), AttachTool()]


class ToolRegistry:
    def __init__(self, builtins: Iterable[Tool], mcp_sources: Iterable[ToolSource | Sequence[Tool]] = (),
                 plugins: Iterable[Tool] = ()) -> None:
        """Raises ``ValueError`` for two built-in or plugin tools with one name, or such a name with ``__``
        (the wiring is wrong: ``load_plugins(reserved=...)`` leaves such plugins out with a problem)."""
        self._named: dict[str, Tool] = {}
        for tool in (*builtins, *plugins):
            if MCP_SEPARATOR in tool.name:
                raise ValueError(f"tool name {tool.name!r}: '__' is reserved for MCP tools")
            if tool.name in self._named:
                raise ValueError(f"two tools named {tool.name!r}")
            self._named[tool.name] = tool
        self._sources = list(mcp_sources)

    @property
    def names(self) -> list[str]:
        """The built-in and plugin tools' names, sorted."""
        return sorted(self._named)

    def mcp_tools(self) -> dict[str, Tool]:
        """The MCP tools the sources list now, by name."""
        out: dict[str, Tool] = {}
        for source in self._sources:
            listed = source.tools() if isinstance(source, ToolSource) else source
            for tool in listed:
                out.setdefault(tool.name, tool)
        return out

    def for_agent(self, agent: Agent) -> list[Tool]:
        """The tools ``agent`` may call, in the order its ``tools`` names them, each once. A name that
        matches nothing now (an MCP server that is not connected) is left out and logged."""
        mcp = self.mcp_tools() if any(MCP_SEPARATOR in entry for entry in agent.tools) else {}
        out: dict[str, Tool] = {}
        for entry in agent.tools:
            matched = self._matching(entry, mcp)
            if not matched:
                log.warning("agent_tool_unavailable", agent=agent.id, tool=entry)
            for tool in matched:
                if tool.name not in out:
                    out[tool.name] = tool.bind(agent) if isinstance(tool, AgentBound) else tool
        return list(out.values())

    def _matching(self, entry: str, mcp: dict[str, Tool]) -> list[Tool]:
        server, sep, rest = entry.partition(MCP_SEPARATOR)
        if sep and rest == "*":
            prefix = server + MCP_SEPARATOR
            return [mcp[name] for name in sorted(mcp) if name.startswith(prefix)]
        if sep:
            return [mcp[entry]] if entry in mcp else []
        return [self._named[entry]] if entry in self._named else []

    def validate(self, config: PlatformConfig) -> list[str]:
        """Every tool name in the agents' ``tools`` that names nothing, as ``agents[i].tools[j]: ...``.

        An MCP tool is checked against its server's list only while the server lists some tools (a
        server that is not connected yet cannot be asked); its server must be declared either way."""
        servers = {s.name for s in config.mcp_servers}
        mcp = self.mcp_tools()
        listing = {name.partition(MCP_SEPARATOR)[0] for name in mcp}
        known = ", ".join(self.names) or "none"
        problems: list[str] = []
        for i, agent in enumerate(config.agents):
            for j, entry in enumerate(agent.tools):
                key = f"agents[{i}].tools[{j}]"
                server, sep, rest = entry.partition(MCP_SEPARATOR)
                if not sep:
                    if entry not in self._named:
                        problems.append(f"{key}: unknown tool {entry!r} (known: {known})")
                elif server not in servers:
                    problems.append(f"{key}: unknown MCP server {server!r} (declare it under mcp_servers)")
                elif not rest or (rest != "*" and server in listing and entry not in mcp):
                    problems.append(f"{key}: unknown tool {entry!r} (MCP server {server!r} has no tool "
                                    f"{rest!r})")
        return problems
