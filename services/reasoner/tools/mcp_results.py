"""What the model sees of an MCP server: tool names it can use, and results as text.

Pure functions, kept apart from the connection code so they can be read (and tested) without a server.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

import orjson
from mcp import types

from agentbus.services.reasoner.tools.base import NAME, ToolResult

UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
MAX_NAME = 64


def tool_names(server: str, tools: Iterable[str]) -> dict[str, str]:
    """The model-facing name of each MCP tool: ``<server>__<tool>``, with characters OpenAI-compatible APIs
    refuse replaced by ``_``. A name that had to be cut to 64 characters, or that would clash with another
    after the replacement, gets a short hash of the original, so two MCP tools never share a name."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for tool in tools:
        name = UNSAFE.sub("_", f"{server}__{tool}")
        if len(name) > MAX_NAME or name in taken:
            tag = hashlib.sha256(tool.encode()).hexdigest()[:8]
            name = f"{name[:MAX_NAME - len(tag) - 1]}_{tag}"
        assert NAME.match(name), name
        out[tool] = name
        taken.add(name)
    return out


def read_only(tool: types.Tool) -> bool:
    return bool(tool.annotations is not None and tool.annotations.read_only_hint)


def describe(tool: types.Tool) -> str:
    return tool.description or tool.title or tool.name


def parameters(tool: types.Tool) -> dict[str, Any]:
    """The tool's input schema as the model is sent it (the generated ``title`` is noise to a model)."""
    schema = dict(tool.input_schema)
    schema.pop("title", None)
    schema.setdefault("type", "object")
    return schema


def reason(err: BaseException) -> str:
    """A short cause: the first error inside task groups' exception groups, with its type."""
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _block(block: types.ContentBlock) -> str:
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, types.ImageContent | types.AudioContent):
        return f"[{block.type} {block.mime_type}, {len(block.data) * 3 // 4} bytes, not shown]"
    if isinstance(block, types.EmbeddedResource):
        res = block.resource
        if isinstance(res, types.TextResourceContents):
            return f"[resource {res.uri}]\n{res.text}"
        return f"[resource {res.uri}, {res.mime_type or 'binary'}, not shown]"
    if isinstance(block, types.ResourceLink):
        return f"[link {block.uri}" + (f": {block.description}" if block.description else "") + "]"
    return f"[{getattr(block, 'type', 'unknown')} content, not shown]"


def _said(structured: dict[str, Any], texts: list[str]) -> bool:
    """Whether a text block already is the structured content serialised (the spec asks servers to send
    both; SDK servers wrap a non-object result as ``{"result": value}``), so it is not repeated."""
    wanted = [structured] + ([structured["result"]] if set(structured) == {"result"} else [])
    for text in texts:
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            if len(wanted) == 2 and text == wanted[1]:
                return True
            continue
        if parsed in wanted:
            return True
    return False


def tool_result(server: str, tool: str, result: types.CallToolResult) -> ToolResult:
    """The text the model reads: the content blocks, then the structured content as JSON unless a block
    already said it. ``isError`` becomes an error result the model may correct itself from."""
    texts = [_block(b) for b in result.content]
    if result.structured_content is not None and not _said(result.structured_content, texts):
        texts.append(orjson.dumps(result.structured_content).decode())
    content = "\n".join(t for t in texts if t)
    if result.is_error:
        return ToolResult(content or f"MCP tool '{tool}' on server '{server}' failed", is_error=True)
    return ToolResult(content)
