"""A small MCP server built with the official SDK, run as its own process by the tests.

``python -m tests.fakes.mcp_server stdio`` speaks over stdin/stdout (the client starts it);
``python -m tests.fakes.mcp_server http PORT`` serves streamable HTTP on 127.0.0.1:PORT, so a test can kill
it and start it again on the same port. ``create_ticket`` answers with the idempotency key it was sent (in
the request ``_meta`` and, over HTTP, the ``Idempotency-Key`` header), which is what the tests check.
"""

from __future__ import annotations

import sys

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

KEY = "agentbus/idempotency-key"


def build() -> MCPServer:
    server = MCPServer("tickets")

    @server.tool(description="Echo the text back.", annotations=ToolAnnotations(read_only_hint=True))
    def echo(text: str) -> str:
        return f"echo: {text}"

    @server.tool(description="Add two integers.")
    def add(a: int, b: int) -> int:
        return a + b

    @server.tool(description="Open a ticket.")
    def create_ticket(title: str, ctx: Context) -> str:
        meta = ctx.request_context.meta or {}
        headers = ctx.headers or {}
        return f"ticket {title!r} meta-key={meta.get(KEY)} header-key={headers.get('idempotency-key')}"

    @server.tool(description="Always fails.", annotations=ToolAnnotations(read_only_hint=True))
    def broken(reason: str) -> str:
        raise ToolError(f"broken: {reason}")

    @server.tool(name="search.docs", description="A name the model could not use as it is.",
                 annotations=ToolAnnotations(read_only_hint=True))
    def search_docs(query: str) -> str:
        return f"found {query}"

    return server


def main(argv: list[str]) -> None:
    server = build()
    if argv[0] == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=int(argv[1]))


if __name__ == "__main__":
    main(sys.argv[1:])
