"""Tools from other installed distributions: entry points in the group ``agentbus.tools``.

A distribution declares ``[project.entry-points."agentbus.tools"] weather = "acme_tools:Weather"``; the
object named is a ``Tool`` class (typically a ``TypedTool`` subclass, whose pydantic argument model gives the
JSON Schema the model is sent) or a factory returning a tool, called with no arguments. A plugin that
cannot be loaded is a problem reported with the entry point's name, and the other tools still load: one
broken package must not take every agent's tools away. Whether a problem stops start-up is the caller's
choice (an agent whose configuration names the broken tool fails ``ToolRegistry.validate``).
"""

from __future__ import annotations

import inspect
from collections.abc import Collection, Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any, NamedTuple

from agentbus.logs import get_logger
from agentbus.services.reasoner.tools.base import NAME, Tool

GROUP = "agentbus.tools"
log = get_logger(__name__)


class Plugins(NamedTuple):
    tools: list[Tool]
    problems: list[str]  # one line per entry point that gave no tool, naming it


class PluginProblem(Exception):
    pass


def load_plugins(reserved: Collection[str] = (), eps: Iterable[EntryPoint] | None = None) -> Plugins:
    """Every tool of the installed ``agentbus.tools`` entry points. ``reserved``: names already taken (the
    built-in tools); a plugin with one of them, or with the name of an earlier plugin, is refused."""
    taken = set(reserved)
    tools: list[Tool] = []
    problems: list[str] = []
    found = entry_points(group=GROUP) if eps is None else eps
    for ep in sorted(found, key=lambda e: (e.name, e.value)):
        where = f"entry point {ep.name!r} ({ep.value})"
        try:
            tool = _tool_of(ep)
            if tool.name in taken:
                raise PluginProblem(f"duplicate tool name {tool.name!r}")
        except PluginProblem as err:
            problems.append(f"{GROUP} {where}: {err}")
            log.warning("tool_plugin_refused", entry_point=ep.name, value=ep.value, reason=str(err))
            continue
        taken.add(tool.name)
        tools.append(tool)
        log.info("tool_plugin_loaded", entry_point=ep.name, tool=tool.name, side_effects=tool.side_effects)
    return Plugins(tools, problems)


def _tool_of(ep: EntryPoint) -> Tool:
    try:
        target = ep.load()
    except Exception as err:  # any error while importing a third-party module is that plugin's problem
        raise PluginProblem(f"failed to import: {type(err).__name__}: {err}") from None
    if not callable(target):
        raise PluginProblem(f"{ep.value} is not a tool class or factory")
    try:
        tool = target()
    except Exception as err:
        raise PluginProblem(f"creating the tool failed: {type(err).__name__}: {err}") from None
    try:
        check_tool(tool)
    except PluginProblem:
        raise
    except Exception as err:  # e.g. a name property that raises
        raise PluginProblem(f"checking the tool failed: {type(err).__name__}: {err}") from None
    checked: Tool = tool  # check_tool made sure it is one
    return checked


def check_tool(tool: Any) -> None:
    """``PluginProblem`` unless ``tool`` satisfies the ``Tool`` protocol with a name the model accepts and
    that is not an MCP tool's (``<server>__<tool>``)."""
    missing = [a for a in ("name", "description", "side_effects", "parameters", "call") if not _has(tool, a)]
    if missing:
        raise PluginProblem(f"{type(tool).__name__} is not a Tool: missing {', '.join(missing)}")
    name = tool.name
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise PluginProblem(f"invalid tool name {name!r} (letters, digits, _ and -, at most 64)")
    if "__" in name:
        raise PluginProblem(f"invalid tool name {name!r}: '__' is reserved for MCP tools (<server>__<tool>)")
    if not isinstance(tool.description, str) or not isinstance(tool.side_effects, bool):
        raise PluginProblem("description must be a str and side_effects a bool")
    try:
        params = tool.parameters
    except Exception as err:
        raise PluginProblem(f"its parameters schema failed: {type(err).__name__}: {err}") from None
    if not isinstance(params, dict) or params.get("type") != "object":
        raise PluginProblem("parameters must be a JSON Schema of an object ({'type': 'object', ...})")
    if not inspect.iscoroutinefunction(tool.call):
        raise PluginProblem("call must be an async method: async def call(self, arguments, ctx)")


def _has(obj: Any, attr: str) -> bool:
    try:
        getattr(obj, attr)
    except AttributeError:
        return False
    except Exception:  # a property that fails is present; check_tool reports its failure
        return True
    return True
