"""A minimal OTLP/HTTP trace collector for tests: decodes the real protobuf export requests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentbus.http import LoopbackServer


@dataclass
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, Any]


@dataclass
class Collector:
    spans: list[Span] = field(default_factory=list)
    server: LoopbackServer | None = None

    async def start(self) -> Collector:
        async def export(request: Request) -> Response:
            req = ExportTraceServiceRequest()
            req.ParseFromString(await request.body())
            for rs in req.resource_spans:
                service = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), "")
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        attrs: dict[str, Any] = {}
                        for a in s.attributes:
                            v = a.value
                            attrs[a.key] = (v.string_value or v.int_value or v.double_value or v.bool_value
                                            or [x.string_value for x in v.array_value.values])
                        self.spans.append(Span(service, s.name, s.trace_id.hex(), s.span_id.hex(),
                                               s.parent_span_id.hex(), s.kind, attrs))
            return Response(ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf")

        self.server = LoopbackServer([Route("/v1/traces", export, methods=["POST"])])
        await self.server.start()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
