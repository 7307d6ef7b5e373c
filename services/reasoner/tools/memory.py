"""The built-in ``memory`` tool: the agent remembers a fact, forgets one, or searches what it remembers.

Remember and forget change memory, so they are ``memory.requested`` commands, published with the reply and
applied by the memory service (the tool itself writes nothing: a replay or a redelivery asks for the same
command, with the same id, and memory applies it once). Search is read-only: it asks memory's admin
endpoint ``POST /v1/recall`` over HTTP. ``side_effects`` is declared per tool, not per action, so the tool
is side-effecting as a whole; a search repeated by a redelivery changes nothing.

Whatever goes wrong (memory down, a bad answer) comes back to the model as an error result it can read.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from agentbus.events import MemoryCommand, MemoryRequested, Recall
from agentbus.httpclient import async_client
from agentbus.services.reasoner.prompt import attribution
from agentbus.services.reasoner.tools.base import ToolContext, ToolResult, TypedTool
from agentbus.settings import DEFAULT_PORTS, Settings

COMMAND = "memory"  # the name the command's id is derived with (see ``ToolContext.command``)


def memory_url(settings: Settings) -> str:
    """Memory's admin HTTP. Not ``settings.port_for``: a process's ``AGENTBUS_HTTP_PORT`` is its own port."""
    return (settings.memory_url or f"http://127.0.0.1:{DEFAULT_PORTS['memory']}").rstrip("/")


class MemoryArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["remember", "forget", "search"] = Field(
        description="remember: keep a fact for later; forget: delete what is remembered like `text`; "
        "search: find what is remembered about `text`")
    text: str = Field(min_length=1, max_length=2000, description="the fact as a full sentence (remember), "
                      "or what to forget or to look for")
    limit: int | None = Field(default=None, ge=1, le=20, description="search: how many memories, at most")


class MemoryTool(TypedTool[MemoryArgs]):
    name: ClassVar[str] = "memory"
    description: ClassVar[str] = (
        "Long-term memory of this workspace. Use `remember` when the user asks you to remember something "
        "(write it as a self-contained sentence, e.g. 'Alice's locker is number 12'), `forget` when they ask "
        "you to forget something (name just the thing, e.g. 'Alice's locker': what is very like it is "
        "deleted), and `search` to look up what you were told before.")
    side_effects: ClassVar[bool] = True  # remember and forget change memory; search is read-only
    args: ClassVar[type[BaseModel]] = MemoryArgs

    def __init__(self, base_url: str, timeout_s: float = 5.0, default_limit: int = 5) -> None:
        self._url = base_url.rstrip("/")
        self._client = async_client(timeout=timeout_s, max_connections=8)
        self._default_limit = default_limit

    async def run(self, args: MemoryArgs, ctx: ToolContext) -> ToolResult:
        if args.action == "search":
            return await self._search(args, ctx)
        command = MemoryCommand(action=args.action, text=args.text, subject=_subject(ctx),
                                requested_by=f"agent:{ctx.agent}")
        event = ctx.command(MemoryRequested, command, COMMAND)
        said = "I will remember" if args.action == "remember" else "I will forget what I remember about"
        return ToolResult(f"{said}: {args.text}", commands=(event,))

    async def _search(self, args: MemoryArgs, ctx: ToolContext) -> ToolResult:
        # memory applies the agent's recall scope for this person in this chat: the tool reads no further
        body = {"tenant": ctx.tenant, "text": args.text, "limit": args.limit or self._default_limit,
                "agent": ctx.agent, "sender": _subject(ctx), "conversation": ctx.conversation,
                "group": ctx.chat.type == "group"}
        try:
            resp = await self._client.post(f"{self._url}/v1/recall", json=body)
        except httpx.HTTPError as exc:
            return ToolResult(f"memory is unavailable ({type(exc).__name__}); try again later", is_error=True)
        if resp.status_code != 200:
            return ToolResult(f"memory search failed ({resp.status_code}): {_reason(resp)}", is_error=True)
        try:
            matches = resp.json()["matches"]
            return ToolResult(_render(matches))
        except (ValueError, KeyError, TypeError):
            return ToolResult("memory search failed: the answer was not understood", is_error=True)

    async def aclose(self) -> None:
        await self._client.aclose()


def _subject(ctx: ToolContext) -> str | None:
    """Who the fact is about: the person who wrote (a job's firing has no person behind it)."""
    if ctx.sender:
        return ctx.sender
    data = ctx.cause.data
    return data.input.sender if data.trigger == "message" else None


def _reason(resp: Any) -> str:
    try:
        return str(resp.json().get("error", ""))[:300]
    except ValueError:
        return resp.text[:300]


def _render(matches: list[dict[str, Any]]) -> str:
    if not matches:
        return "Nothing remembered matches that."
    lines = []
    for m in matches:
        said = Recall.model_validate({k: v for k, v in m.items() if k in Recall.model_fields})
        lines.append(f"- {attribution(said)} {said.text} ({said.kind}; score {said.score:.2f})")
    return "Remembered:\n" + "\n".join(lines)
