"""``POST /v1/chat/completions`` and ``GET /v1/models``: OpenAI's API in front of the bus.

A request is authenticated by an API token of a tenant (``agb_...``, the operator API's tokens; the channel's
``min_role``, operator by default, or higher), its ``model`` names the agent of one of the tenant's ``api``
channels, and its question goes through the acceptor like any platform's message (quota, de-duplication,
publish with acks=all), in the conversation of the caller's ``user`` (or of the token, without one). The
request then waits for the reply on this replica (``replies.Waiters``); a stream sends the answer as it grows.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import orjson
import structlog
from opentelemetry.trace import SpanKind
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from agentbus import metrics
from agentbus.channeltypes import ApiChannel
from agentbus.events import Chat, Sender
from agentbus.services.ingress.accept import Acceptor
from agentbus.services.ingress.api.access import Identity, Unauthenticated, authenticate
from agentbus.services.ingress.api.app import bearer_token
from agentbus.services.ingress.api.ports import StoreUnavailable, TokenStore
from agentbus.services.ingress.chat.replies import Update, Waiters
from agentbus.services.ingress.chat.schema import (
    BadRequest,
    ChatRequest,
    chunk,
    completion,
    openai_error,
    parse_request,
    question_of,
)
from agentbus.services.ingress.inbound import Inbound, InboundMessage
from agentbus.services.ingress.routes import BodyTooLarge, read_body
from agentbus.telemetry import tracer

log = structlog.get_logger("agentbus.ingress.chat")


class Refused(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def sse(payload: object) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


@dataclass
class ChatApi:
    channels: dict[tuple[str, str], ApiChannel]  # (tenant, agent) -> channel
    tokens: TokenStore
    acceptor: Acceptor
    waiters: Waiters
    ready: Callable[[], bool]  # whether the replies are followed (a request taken earlier could miss its own)
    max_body: int

    async def _who(self, request: Request) -> Identity:
        try:
            who = await authenticate(self.tokens, bearer_token(request.headers.get("authorization")))
        except Unauthenticated as why:
            raise Refused(openai_error(401, str(why), "invalid_request_error", "invalid_api_key")) from None
        except StoreUnavailable:
            raise Refused(openai_error(503, "temporarily unavailable; retry later", "server_error")) from None
        if who.tenant is None:
            raise Refused(openai_error(403, "an owner token belongs to no tenant: chat with a tenant's token",
                                       "permission_error", "permission_denied"))
        return who

    async def _request(self, request: Request) -> ChatRequest:
        try:
            body = await read_body(request, self.max_body)
        except BodyTooLarge:
            raise Refused(openai_error(413, f"body larger than {self.max_body} bytes", "invalid_request_error",
                                       "request_too_large")) from None
        except ClientDisconnect:
            raise Refused(openai_error(400, "client disconnected", "invalid_request_error")) from None
        try:
            raw = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise Refused(openai_error(400, "the body is not valid JSON", "invalid_request_error",
                                       "invalid_json")) from None
        try:
            return parse_request(raw)
        except BadRequest as bad:
            raise Refused(openai_error(bad.status, bad.message, "invalid_request_error", bad.code,
                                       bad.param)) from None

    async def completions(self, request: Request) -> Response:
        with tracer().start_as_current_span("chat completions", kind=SpanKind.SERVER) as span:
            try:
                response = await self._completions(request)
            except Refused as refused:
                response = refused.response
            span.set_attribute("http.response.status_code", response.status_code)
            metrics.child(metrics.HTTP_REQUESTS, "chat", str(response.status_code)).inc()
            return response

    async def _completions(self, request: Request) -> Response:
        who = await self._who(request)
        req = await self._request(request)
        try:
            question = question_of(req)
        except BadRequest as bad:
            return openai_error(bad.status, bad.message, "invalid_request_error", bad.code, bad.param)
        assert who.tenant is not None  # _who refused owner tokens
        channel = self.channels.get((who.tenant, req.model))
        if channel is None:
            return openai_error(404, f"The model '{req.model[:100]}' does not exist or you do not have access to it.",
                                "invalid_request_error", "model_not_found", "model")
        if not who.may(who.tenant, channel.min_role):
            return openai_error(403, f"chatting needs the {channel.min_role} role; the token has {who.role}",
                                "permission_error", "permission_denied")
        if not self.ready():
            return openai_error(503, "not ready to take chat requests yet; retry shortly", "server_error")
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        chat_id = req.user or f"token-{who.token_id}"
        message = InboundMessage(platform_message_id=cid, sender=Sender(id=chat_id, name=who.name),
                                 chat=Chat(id=chat_id, type="direct"), text=question, mentioned_bot=True)
        queue = self.waiters.open(channel.id, cid)
        streaming = False
        try:
            try:
                outcome = await self.acceptor.accept(channel, Inbound(message=message, dedupe_id=cid))
            except Exception as exc:
                log.error("chat_not_accepted", channel=channel.id, error=f"{type(exc).__name__}: {exc}"[:300])
                return openai_error(503, "temporarily unable to accept the message; retry later", "server_error")
            if outcome.status == "over_quota":
                return openai_error(429, outcome.reason, "rate_limit_error", "rate_limit_exceeded",
                                    headers={"retry-after": str(max(1, math.ceil(outcome.retry_after_s)))})
            if outcome.status != "published":
                return openai_error(400, f"not accepted: {outcome.reason}", "invalid_request_error")
            log.info("chat_accepted", channel=channel.id, stream=req.stream)
            deadline = time.monotonic() + channel.reply_timeout_s
            update = await self._next(queue, deadline, want_final=not req.stream)
            if update is None:
                return self._timeout(channel)
            if not req.stream:
                return JSONResponse(completion(cid, req.model, update.text))
            streaming = True
            return StreamingResponse(self._stream(channel, cid, req.model, queue, update, deadline),
                                     media_type="text/event-stream", headers={"cache-control": "no-cache"})
        finally:
            if not streaming:  # a stream closes its waiter when it ends
                self.waiters.close(channel.id, cid)

    @staticmethod
    async def _next(queue: asyncio.Queue[Update], deadline: float, want_final: bool) -> Update | None:
        while True:
            try:
                update = await asyncio.wait_for(queue.get(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return None
            if update.final or not want_final:
                return update

    @staticmethod
    def _timeout(channel: ApiChannel) -> Response:
        log.warning("chat_reply_timeout", channel=channel.id, timeout_s=channel.reply_timeout_s)
        return openai_error(504, f"the agent did not answer within {channel.reply_timeout_s:g} s (reply_timeout_s); "
                            "its answer will still be remembered in the conversation", "timeout", "reply_timeout")

    async def _stream(self, channel: ApiChannel, cid: str, model: str, queue: asyncio.Queue[Update],
                      first: Update, deadline: float) -> AsyncIterator[bytes]:
        """OpenAI's chunks: the role, the text as deltas of the partials, the rest of the reply, the finish,
        ``[DONE]``. A partial that does not extend what was sent (a later model step starting over) is not
        sent; the reply's text is, after what was sent, so the streamed text is the answer."""
        created = int(time.time())
        sent, seq, update = "", -1, first
        try:
            yield sse(chunk(cid, model, created, {"role": "assistant", "content": ""}))
            while True:
                if update.final:
                    rest = update.text[len(sent):] if update.text.startswith(sent) else update.text
                    if not update.text.startswith(sent):
                        log.warning("chat_stream_restarted", channel=channel.id)
                    if rest:
                        yield sse(chunk(cid, model, created, {"content": rest}))
                    yield sse(chunk(cid, model, created, {}, "stop"))
                    yield b"data: [DONE]\n\n"
                    return
                if update.seq > seq and update.text.startswith(sent) and len(update.text) > len(sent):
                    yield sse(chunk(cid, model, created, {"content": update.text[len(sent):]}))
                    sent, seq = update.text, update.seq
                next_update = await self._next(queue, deadline, want_final=False)
                if next_update is None:
                    self._timeout(channel)
                    yield sse({"error": {"message": f"the agent did not finish within {channel.reply_timeout_s:g} s",
                                         "type": "timeout", "param": None, "code": "reply_timeout"}})
                    return
                update = next_update
        finally:
            self.waiters.close(channel.id, cid)

    async def models(self, request: Request) -> Response:
        try:
            who = await self._who(request)
        except Refused as refused:
            return refused.response
        data = [{"id": agent, "object": "model", "created": 0, "owned_by": tenant}
                for (tenant, agent) in sorted(self.channels) if tenant == who.tenant]
        return JSONResponse({"object": "list", "data": data})

    def routes(self) -> list[BaseRoute]:
        return [Route("/v1/chat/completions", self.completions, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"])]
