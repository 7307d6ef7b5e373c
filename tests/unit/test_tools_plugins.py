"""Plugin tools from real entry points: a distribution on ``sys.path`` (a ``*.dist-info`` folder with an
``entry_points.txt``, as pip leaves it) with good and broken plugins; the broken ones are reported by
entry point and do not stop the good ones."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agentbus.services.reasoner.tools.plugins import GROUP, load_plugins
from tests.support.toolctx import tool_context

GOOD = '''
from typing import ClassVar
from pydantic import BaseModel, Field
from agentbus.services.reasoner.tools.base import ToolResult, TypedTool

class WeatherArgs(BaseModel):
    city: str = Field(description="city name")
    days: int = Field(default=1, ge=1, le=7)

class Weather(TypedTool[WeatherArgs]):
    name: ClassVar[str] = "weather"
    description: ClassVar[str] = "The forecast for a city."
    args: ClassVar[type[BaseModel]] = WeatherArgs

    async def run(self, args, ctx):
        return ToolResult(f"{args.city}: sunny for {args.days} day(s), asked in {ctx.tenant}")

class Plain:
    """A tool without TypedTool: plain attributes and an async call."""
    def __init__(self, name="shout"):
        self.name, self.description, self.side_effects = name, "Upper-cases text.", False
        self.parameters = {"type": "object", "properties": {"text": {"type": "string"}}}
    async def call(self, arguments, ctx):
        return ToolResult(arguments["text"].upper())

def make_plain():
    return Plain()

def make_named(name):
    def factory():
        return Plain(name)
    return factory

bad_name = make_named("has space")
mcp_like = make_named("srv__tool")
clash = make_named("now")
twice = make_named("shout")

class Sync(Plain):
    def call(self, arguments, ctx):
        return None

class NoSchema(Plain):
    def __init__(self):
        super().__init__("noschema")
        self.parameters = {"type": "string"}

class Half:
    name = "half"

def failing():
    raise RuntimeError("no API key configured")

not_callable = 42
'''

ENTRY_POINTS = f'''
[{GROUP}]
weather = acme_tools:Weather
shout = acme_tools:make_plain
broken = acme_broken:Tool
missing_attr = acme_tools:DoesNotExist
bad_name = acme_tools:bad_name
mcp_like = acme_tools:mcp_like
clash = acme_tools:clash
twice = acme_tools:twice
sync = acme_tools:Sync
no_schema = acme_tools:NoSchema
half = acme_tools:Half
failing = acme_tools:failing
not_callable = acme_tools:not_callable

[console_scripts]
unrelated = acme_tools:make_plain
'''


@pytest.fixture
def distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "acme_tools.py").write_text(textwrap.dedent(GOOD))
    (tmp_path / "acme_broken.py").write_text("import a_module_that_is_not_installed\n")
    info = tmp_path / "acme_tools-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-tools\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


async def test_good_plugins_load_and_broken_ones_are_reported_by_entry_point(distribution: Path) -> None:
    tools, problems = load_plugins(reserved={"now", "http_fetch"})
    assert [t.name for t in tools] == ["shout", "weather"]
    assert sorted(problems) == sorted([
        f"{GROUP} entry point 'bad_name' (acme_tools:bad_name): invalid tool name 'has space' "
        "(letters, digits, _ and -, at most 64)",
        f"{GROUP} entry point 'broken' (acme_broken:Tool): failed to import: ModuleNotFoundError: "
        "No module named 'a_module_that_is_not_installed'",
        f"{GROUP} entry point 'clash' (acme_tools:clash): duplicate tool name 'now'",
        f"{GROUP} entry point 'failing' (acme_tools:failing): creating the tool failed: RuntimeError: "
        "no API key configured",
        f"{GROUP} entry point 'half' (acme_tools:Half): Half is not a Tool: missing description, "
        "side_effects, parameters, call",
        f"{GROUP} entry point 'mcp_like' (acme_tools:mcp_like): invalid tool name 'srv__tool': '__' is "
        "reserved for MCP tools (<server>__<tool>)",
        f"{GROUP} entry point 'missing_attr' (acme_tools:DoesNotExist): failed to import: AttributeError: "
        "module 'acme_tools' has no attribute 'DoesNotExist'",
        f"{GROUP} entry point 'no_schema' (acme_tools:NoSchema): parameters must be a JSON Schema of an "
        "object ({'type': 'object', ...})",
        f"{GROUP} entry point 'not_callable' (acme_tools:not_callable): acme_tools:not_callable is not a "
        "tool class or factory",
        f"{GROUP} entry point 'sync' (acme_tools:Sync): call must be an async method: "
        "async def call(self, arguments, ctx)",
        f"{GROUP} entry point 'twice' (acme_tools:twice): duplicate tool name 'shout'",
    ])


async def test_a_loaded_plugin_is_called_with_arguments_checked_by_its_model(distribution: Path) -> None:
    tools, _ = load_plugins()
    weather = next(t for t in tools if t.name == "weather")
    assert weather.parameters["required"] == ["city"]
    assert weather.parameters["properties"]["days"] == {"default": 1, "maximum": 7, "minimum": 1,
                                                        "title": "Days", "type": "integer"}
    result = await weather.call({"city": "Oslo", "days": 2}, tool_context())
    assert (result.content, result.is_error) == ("Oslo: sunny for 2 day(s), asked in acme", False)
    result = await weather.call({"days": 9}, tool_context())
    assert result.is_error and "city: Field required" in result.content and "days:" in result.content


def test_without_the_distribution_there_are_no_plugins() -> None:
    assert load_plugins() == ([], [])
