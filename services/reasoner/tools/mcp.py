"""MCP servers' tools as tools of the reasoner's loop.

One ``McpSource`` per configured server keeps one session open and shares it between calls. The SDK's
context managers (transport, session) must be entered and left in one task, and a failing transport cancels
the task that entered it, so the session lives in a supervisor task this source owns, never in a caller's:
callers only send requests over it. A server that is down is not a crash: ``start`` returns with the
source down, tools listed before stay known, a call while it is down is an error result the model reads,
and the supervisor reconnects with backoff (tenacity), woken early by a call so it need not wait the full
delay. ``aclose`` leaves the session from the supervisor task, so a stdio server is stopped by the SDK
(stdin closed, then terminated) and not left running.

Side-effecting calls carry the loop's idempotency key in the request ``_meta`` (and over HTTP as a header too;
see ``mcp_transport``). A legacy HTTP server that forgot the session (404) ran nothing, so the call is sent
once more over a new session.
"""

from __future__ import annotations

import asyncio
import math
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, cast

import anyio
import httpx2
import structlog
from mcp import Client, types
from mcp.shared.exceptions import MCPError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from agentbus import __version__
from agentbus.config import McpServer
from agentbus.services.reasoner.tools.base import Tool, ToolContext, ToolResult
from agentbus.services.reasoner.tools.mcp_results import (
    describe,
    parameters,
    read_only,
    reason,
    tool_names,
    tool_result,
)
from agentbus.services.reasoner.tools.mcp_transport import KEY_META, open_transport

log = structlog.get_logger("agentbus.reasoner")

CLIENT_INFO = types.Implementation(name="agentbus", version=__version__)
MAX_PAGES = 100
UNSURE = " (it may or may not have acted: check before asking for it again)"


@dataclass(frozen=True)
class McpState:
    """For readiness detail: whether the session is up, and why not."""

    server: str
    up: bool
    error: str | None
    tools: int


@dataclass(eq=False)
class McpTool:
    """One MCP tool as the model sees it; calls go through its source's shared session."""

    source: McpSource
    remote: str  # the tool's name on its server
    name: str
    description: str
    side_effects: bool
    parameters: dict[str, Any]

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        return await self.source.call(self, arguments, ctx)


class McpSource:
    def __init__(self, server: McpServer, *, backoff_s: tuple[float, float] = (0.5, 30.0),
                 mode: str = "auto") -> None:
        self.server = server
        self._mode = mode  # the SDK's: "auto" (discover, else the initialize handshake), "legacy", or a version
        self._backoff = backoff_s
        self._tools: dict[str, McpTool] = {}
        self._client: Client | None = None
        self._expired: Client | None = None  # a session the server answered 404 for (it restarted, or dropped it)
        self._error: str | None = "not started"
        self._attempts = 0
        self._settled = asyncio.Condition()
        self._wake = asyncio.Event()
        self._drop = asyncio.Event()
        self._scope: anyio.CancelScope | None = None
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.server.name

    def tools(self) -> list[Tool]:
        """The tools of the last successful listing (kept while the server is down; re-read on reconnect)."""
        return list(self._tools.values())

    def state(self) -> McpState:
        return McpState(self.name, self._client is not None, self._error, len(self._tools))

    async def start(self) -> None:
        """Connect and list the tools, waiting at most the server's timeout; a server that is down leaves
        the source down (see ``state``), retrying in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name=f"mcp-{self.name}")
        await self._await_attempt(0)

    async def refresh(self) -> bool:
        """Reconnect now if the server is down (e.g. before an inference that wants its tools); whether it is up."""
        return await self._connected() is not None

    async def aclose(self) -> None:
        self._closing = True
        self._wake.set()
        self._drop.set()
        await self._settle()
        if self._scope is not None and self._client is None:
            self._scope.cancel()  # still connecting: give up on it
        task, self._task = self._task, None
        if task is not None:
            _, pending = await asyncio.wait({task}, timeout=self.server.timeout_s + 10)
            for t in pending:  # the SDK bounds its own shutdown; this is the last resort
                t.cancel()
                await asyncio.wait({t})
        self._client = None
        self._error = "closed"

    async def call(self, tool: McpTool, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        for _ in range(2):  # the server may have forgotten the session, running nothing: a new one, once more
            result = await self._call(tool, arguments, ctx)
            if result is not None:
                return result
        return self._unavailable()

    async def _call(self, tool: McpTool, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult | None:
        client = await self._connected()
        if client is None:
            return self._unavailable()
        timeout = self.server.timeout_s
        # RequestParamsMeta is an open TypedDict (PEP 728 extra_items), which mypy does not read yet
        meta = cast(types.RequestParamsMeta, {KEY_META: ctx.idempotency_key}) if tool.side_effects else None
        try:
            result = await client.call_tool(tool.remote, arguments, read_timeout_seconds=timeout, meta=meta)
        except MCPError as err:
            if err.code == types.CONNECTION_CLOSED:
                return self._lost(client, err, tool)
            if self._expired is client:
                self._lost(client, err)
                return None
            if err.code == types.REQUEST_TIMEOUT:
                return ToolResult(f"MCP server '{self.name}' did not answer '{tool.remote}' within {timeout:g}s"
                                  f"{UNSURE if tool.side_effects else ''}", is_error=True)
            return ToolResult(f"MCP server '{self.name}' refused '{tool.remote}': {err.message}", is_error=True)
        except (OSError, httpx2.TransportError, anyio.ClosedResourceError, anyio.BrokenResourceError,
                anyio.EndOfStream) as err:
            return self._lost(client, err, tool)
        except Exception as err:  # an answer the SDK could not read: the model hears of it, the session stays
            log.warning("mcp_call_unreadable", server=self.name, tool=tool.remote, error=reason(err))
            return ToolResult(f"MCP server '{self.name}' answered '{tool.remote}' unreadably: {reason(err)}",
                              is_error=True)
        return tool_result(self.name, tool.remote, result)

    # -- the session, owned by the supervisor task --------------------------------------------------------

    async def _supervise(self) -> None:
        while not self._closing:
            retrying = AsyncRetrying(
                wait=wait_exponential_jitter(initial=self._backoff[0], max=self._backoff[1]),
                retry=retry_if_exception_type(Exception),
                stop=lambda _: self._closing,
                sleep=self._nap,
                before_sleep=self._log_retry,
                reraise=True,
            )
            try:
                await retrying(self._hold)  # returns when a session that was up ends; then reconnect at once
            except Exception:
                return  # closing: the last attempt's error is in state()

    async def _hold(self) -> None:
        """One session, from connecting to its end, entered and left in this task."""
        if self._closing:  # closed while this attempt waited its turn
            return
        self._drop.clear()
        up = False
        try:
            with anyio.CancelScope(deadline=anyio.current_time() + self.server.timeout_s) as scope:
                self._scope = scope
                async with AsyncExitStack() as stack:
                    transport = await open_transport(self.server, stack, self._session_forgotten)
                    client = await stack.enter_async_context(
                        Client(transport, read_timeout_seconds=self.server.timeout_s, client_info=CLIENT_INFO,
                               cache=None, mode=self._mode))
                    listing = await self._list(client)
                    scope.deadline = math.inf
                    self._up(client, listing)
                    up = True
                    await self._settle()
                    await self._drop.wait()
            if scope.cancelled_caught and not up and not self._closing:
                raise TimeoutError(f"no answer within {self.server.timeout_s:g}s")
        except Exception as err:
            if not self._closing:
                again, self._error = self._error == reason(err), reason(err)
                (log.info if again and not up else log.warning)(
                    "mcp_server_down", server=self.name, error=self._error, was_up=up)
            if not up:
                raise
        finally:
            self._client = None
            self._scope = None
            if not up:
                await self._settle()  # wake callers waiting for this attempt

    def _session_forgotten(self) -> None:
        self._expired = self._client

    async def _list(self, client: Client) -> list[types.Tool]:
        tools: list[types.Tool] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = await client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                return tools
        raise RuntimeError(f"tools/list did not end within {MAX_PAGES} pages")

    def _up(self, client: Client, listing: list[types.Tool]) -> None:
        names = tool_names(self.name, [t.name for t in listing])
        self._tools = {
            names[t.name]: McpTool(self, t.name, names[t.name], describe(t),
                                   side_effects=self.server.side_effects and not read_only(t),
                                   parameters=parameters(t))
            for t in listing
        }
        self._client = client
        self._error = None
        log.info("mcp_server_up", server=self.name, tools=len(self._tools))

    def _lost(self, client: Client, err: BaseException, tool: McpTool | None = None) -> ToolResult:
        """A call found the session dead: end it so the supervisor reconnects, and tell the model (the
        call may have reached the server before the connection went)."""
        if self._client is client:
            self._client = None
            self._error = reason(err)
            log.warning("mcp_server_lost", server=self.name, error=self._error)
            self._drop.set()
        down = self._unavailable()
        return ToolResult(down.content + UNSURE, is_error=True) if tool and tool.side_effects else down

    def _unavailable(self) -> ToolResult:
        return ToolResult(f"MCP server '{self.name}' is unavailable: {self._error}", is_error=True)

    async def _connected(self) -> Client | None:
        """The live session, or after waking the supervisor, the one its next attempt opens (if any)."""
        if self._client is not None or self._closing or self._task is None:
            return self._client
        seen = self._attempts
        self._wake.set()
        await self._await_attempt(seen)
        return self._client

    async def _await_attempt(self, seen: int) -> None:
        async with self._settled:
            try:
                await asyncio.wait_for(self._settled.wait_for(lambda: self._attempts > seen or self._closing),
                                       self.server.timeout_s + 1)
            except TimeoutError:
                pass

    async def _settle(self) -> None:
        async with self._settled:
            self._attempts += 1
            self._settled.notify_all()

    async def _nap(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass
        self._wake.clear()

    def _log_retry(self, state: RetryCallState) -> None:
        wait = state.next_action.sleep if state.next_action else 0.0
        log.info("mcp_reconnect_scheduled", server=self.name, attempt=state.attempt_number, in_s=round(wait, 2))
