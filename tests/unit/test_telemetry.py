"""Without a tracing endpoint no span is recorded, yet every span has ids that join the services' logs and
travel in the events' headers."""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind

from agentbus.logs import _add_trace
from agentbus.telemetry import extract_context, inject_headers, make_provider


def test_without_an_endpoint_spans_are_not_recorded_but_trace_ids_propagate() -> None:
    ingress = make_provider("ingress", None).get_tracer("t")
    memory = make_provider("memory", None).get_tracer("t")
    with ingress.start_as_current_span("webhook receive", kind=SpanKind.SERVER) as root:
        assert not root.is_recording()
        ctx = root.get_span_context()
        assert ctx.is_valid and not ctx.trace_flags.sampled
        logged = _add_trace(None, "info", {})
        assert logged == {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}
        headers = inject_headers()
    assert any(k == "traceparent" for k, _ in headers)

    token = otel_context.attach(extract_context(headers))  # the next service, reading the event
    try:
        with memory.start_as_current_span("message.received process", kind=SpanKind.CONSUMER) as child:
            assert not child.is_recording()
            assert child.get_span_context().trace_id == ctx.trace_id
            assert child.get_span_context().span_id != ctx.span_id
            assert _add_trace(None, "info", {})["trace_id"] == format(ctx.trace_id, "032x")
    finally:
        otel_context.detach(token)

