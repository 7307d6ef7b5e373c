"""HTTP routes of ingress: ``/v1/webhooks/{channel_id}`` for every channel type."""

from __future__ import annotations

import math
import time

import structlog
from opentelemetry.trace import SpanKind
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agentbus import metrics
from agentbus.bus.errors import is_transient
from agentbus.http import error
from agentbus.services.ingress.accept import Acceptor
from agentbus.services.ingress.channels.base import HttpRequest, InboundAdapter, Rejected
from agentbus.services.ingress.channelstate import ChannelActivity, reason_of
from agentbus.telemetry import tracer

log = structlog.get_logger("agentbus.ingress")


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BodyTooLarge
        except ValueError:
            raise BodyTooLarge from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def webhook_routes(adapters: dict[str, InboundAdapter], acceptor: Acceptor, max_body: int,
                   activity: ChannelActivity | None = None) -> list[BaseRoute]:
    async def webhook(request: Request) -> Response:
        channel_id = request.path_params["channel_id"]
        with tracer().start_as_current_span("webhook receive", kind=SpanKind.SERVER) as span:
            span.set_attribute("http.request.method", request.method)
            span.set_attribute("agentbus.channel", channel_id)
            response = await _webhook(request, channel_id)
            span.set_attribute("http.response.status_code", response.status_code)
            metrics.child(metrics.HTTP_REQUESTS, "webhook", str(response.status_code)).inc()
            if activity is not None and channel_id in adapters:  # configured channels only: a bounded set
                status = response.status_code
                activity.hit(channel_id, status, reason_of(bytes(response.body)) if status >= 400 else None)
            return response

    async def _webhook(request: Request, channel_id: str) -> Response:
        adapter = adapters.get(channel_id)
        if adapter is None:
            return error(404, f"unknown channel {channel_id[:100]!r}")
        if adapter.channel.mode == "stream":
            return error(409, "this channel receives its events over its long connection (mode: stream)")
        if not adapter.accepts_method(request.method):
            return error(405, f"method {request.method} not allowed for this channel")
        try:
            body = await read_body(request, max_body)
        except BodyTooLarge:
            return error(413, f"body larger than {max_body} bytes")
        except ClientDisconnect:
            return error(400, "client disconnected")
        req = HttpRequest(
            method=request.method,
            path=request.url.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            query=dict(request.query_params),
            body=body,
            received_at=time.time(),
        )
        try:
            inbound = await adapter.receive(req)
        except Rejected as rej:
            log.info("webhook_rejected", channel=channel_id, status=rej.status, reason=rej.reason)
            return error(rej.status, rej.reason)
        try:
            outcome = await acceptor.accept(adapter.channel, inbound)
        except Exception as exc:
            # not acknowledged: the platform retries. Infrastructure trouble is a 503, never a 500.
            log.error("webhook_not_accepted", channel=channel_id, error=f"{type(exc).__name__}: {exc}"[:300])
            status = 503 if is_transient(exc) else 500
            return error(status, "temporarily unable to accept the message; retry later")
        if outcome.status == "over_quota":
            # nothing published or recorded: the platform's retry after Retry-After is accepted (once)
            refused = error(429, outcome.reason)
            refused.headers["retry-after"] = str(max(1, math.ceil(outcome.retry_after_s)))
            refused.headers["x-agentbus-outcome"] = outcome.status
            return refused
        a = inbound.answer
        resp = Response(a.body, status_code=a.status, media_type=a.content_type)
        resp.headers["x-agentbus-outcome"] = outcome.status
        if outcome.event_id is not None:
            resp.headers["x-agentbus-event-id"] = str(outcome.event_id)
        return resp

    async def channels(_: Request) -> Response:
        return JSONResponse(
            {"channels": [{"id": cid, "type": a.channel.type, "mode": a.channel.mode}
                          for cid, a in sorted(adapters.items())]}
        )

    return [
        Route("/v1/webhooks/{channel_id}", webhook, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Route("/v1/channels", channels, methods=["GET"]),
    ]
