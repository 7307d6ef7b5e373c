"""How a configured MCP server is reached: a subprocess over stdio, or streamable HTTP with its headers.

Side-effecting calls carry the loop's idempotency key in the request ``_meta`` under ``KEY_META``: that is the
protocol's place for request metadata and works on every transport. Over HTTP the key is also sent as an
``Idempotency-Key`` header, for gateways and servers that dedupe at the HTTP layer. The SDK has no per-call
header option (its own per-request headers are the protocol's), so an httpx request hook copies the key
from the JSON-RPC body of each POST: the header can never disagree with ``_meta``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Final

import httpx2
import orjson
from mcp import StdioServerParameters
from mcp.client import Transport
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from agentbus.config import McpServer

KEY_META: Final = "agentbus/idempotency-key"
SSE_READ_S = 300.0  # an idle server-to-client event stream may stay silent this long


async def mirror_key(request: httpx2.Request) -> None:
    if request.method != "POST" or not request.content:
        return
    try:
        body = orjson.loads(request.content)
    except orjson.JSONDecodeError:
        return
    params = body.get("params") if isinstance(body, dict) else None
    meta = params.get("_meta") if isinstance(params, dict) else None
    key = meta.get(KEY_META) if isinstance(meta, dict) else None
    if isinstance(key, str):
        request.headers["Idempotency-Key"] = key


async def open_transport(server: McpServer, stack: AsyncExitStack, session_forgotten: Callable[[], None]) -> Transport:
    """The transport to enter for ``server`` (its HTTP client is closed with ``stack``). ``session_forgotten``
    is called when the server answers 404 to a request in a session: per MCP, the client must start a new one."""
    if server.transport == "stdio":
        assert server.command is not None  # checked by McpServer
        return stdio_client(StdioServerParameters(command=server.command, args=list(server.args),
                                                  env=dict(server.env) or None))

    async def watch(response: httpx2.Response) -> None:
        if response.status_code == 404 and "mcp-session-id" in response.request.headers:
            session_forgotten()

    assert server.url is not None  # checked by McpServer
    http = await stack.enter_async_context(httpx2.AsyncClient(
        headers=dict(server.headers),
        timeout=httpx2.Timeout(server.timeout_s, read=max(SSE_READ_S, server.timeout_s)),
        event_hooks={"request": [mirror_key], "response": [watch]}))
    return streamable_http_client(server.url, http_client=http)
