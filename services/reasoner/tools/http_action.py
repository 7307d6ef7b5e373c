"""Tools that call the company's own HTTP APIs, declared in ``agentbus.yaml`` under ``http_tools``.

The model's arguments are sent as the JSON body, with who is asking (tenant, conversation, agent) beside
them; the answer's text is what the model reads. A side-effecting call carries ``Idempotency-Key``: the key
of the loop step, the same when the step is retried after a crash, so an API that honours the header (as
payment and ticket APIs do) applies the call once. The URL is the operator's own, so it may be internal:
unlike ``http_fetch``, which reads what the model asks for, these tools only reach what the configuration
names.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from agentbus.config import HttpTool
from agentbus.services.reasoner.ports import ToolContext, ToolResult


class HttpActionTool:
    def __init__(self, spec: HttpTool, http: httpx.AsyncClient) -> None:
        self.spec = spec
        self.name = spec.name
        self.description = spec.description
        self.side_effects = spec.side_effects
        self.parameters: dict[str, Any] = dict(spec.parameters)
        self._http = http

    def _headers(self, ctx: ToolContext) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        for k, v in self.spec.headers.items():
            resolved = v if isinstance(v, str) else v.resolve()
            if resolved is not None:
                headers[k] = resolved
        if self.side_effects:
            headers["Idempotency-Key"] = ctx.idempotency_key
        return headers

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        body = orjson.dumps({"arguments": arguments, "context": {
            "tenant": ctx.tenant, "conversation": ctx.conversation, "agent": ctx.agent, "chat": ctx.chat.id}})
        try:
            resp = await self._http.request(self.spec.method, self.spec.url, content=body,
                                            headers=self._headers(ctx), timeout=self.spec.timeout_s)
        except httpx.HTTPError as exc:
            return ToolResult(f"{self.name} is unavailable: {type(exc).__name__}", is_error=True)
        text = resp.content[: self.spec.max_bytes].decode("utf-8", errors="replace")
        if resp.status_code >= 400:
            return ToolResult(f"{self.name} answered HTTP {resp.status_code}: {text[:500]}", is_error=True)
        return ToolResult(text if len(resp.content) <= self.spec.max_bytes else text + "\n[truncated]")
