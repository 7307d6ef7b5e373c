"""Structured logs: JSON lines with the service, trace_id and correlation_id bound automatically.

Message bodies and secrets never go to the log in full: fields named like a secret are masked, and fields
named like message text are shortened unless debug logging of bodies is explicitly enabled.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import orjson
import structlog
from opentelemetry import trace

SECRET_KEYS = ("secret", "token", "password", "api_key", "authorization", "signature", "sign")
BODY_KEYS = ("text", "body", "prompt", "content", "reply")

_state = {"debug_bodies": False}


def _add_trace(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event.setdefault("trace_id", format(ctx.trace_id, "032x"))
        event.setdefault("span_id", format(ctx.span_id, "016x"))
    return event


_SECRET_RE = re.compile("|".join(SECRET_KEYS))


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for k in list(event):
        lk = k.lower()
        if _SECRET_RE.search(lk):
            event[k] = "***"
        elif not _state["debug_bodies"] and lk in BODY_KEYS and isinstance(event[k], str):
            v = event[k]
            event[k] = f"<{len(v)} chars>"
    return event


def configure_logging(service: str, level: str = "info", json: bool = True, debug_bodies: bool = False) -> None:
    _state["debug_bodies"] = debug_bodies
    lvl = logging.getLevelName(level.upper())
    if not isinstance(lvl, int):
        lvl = logging.INFO
    logging.basicConfig(stream=sys.stderr, level=max(lvl, logging.WARNING), format="%(name)s %(message)s")
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace,
        _redact,
        structlog.processors.format_exc_info,
    ]
    if json:  # orjson straight to bytes: the stdlib encoder was a visible share of a service's CPU per event
        renderer: Any = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        factory: Any = structlog.BytesLoggerFactory(file=sys.stderr.buffer)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        factory = structlog.PrintLoggerFactory(file=sys.stderr)
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name) if name else structlog.get_logger()
