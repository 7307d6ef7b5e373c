"""Wrapping a failed record into a ``dead.lettered`` event that keeps the original bytes and the error."""

from __future__ import annotations

import base64
import uuid

from aiokafka.structs import ConsumerRecord

from agentbus.events import DeadLettered, DeadLetteredData, Event, derive_id, utcnow


def _text(b: bytes | None) -> str:
    if b is None:
        return ""
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(b).decode()


def dead_letter_event(
    service: str, rec: ConsumerRecord, event: Event | None, exc: BaseException, attempts: int
) -> Event:
    headers = {k: _text(v) for k, v in (rec.headers or ())}
    cause = str(event.id) if event else f"{rec.topic}:{rec.partition}:{rec.offset}"
    tenant = event.tenant if event else "unknown"
    conversation = event.conversation if event else _text(rec.key) or "unknown"
    correlation = event.correlation_id if event else derive_id(cause, "correlation")
    data = DeadLetteredData(
        service=service,
        original_topic=rec.topic,
        original_partition=rec.partition,
        original_offset=rec.offset,
        original_key=_text(rec.key) if rec.key is not None else None,
        original_headers=headers,
        original_value=_text(rec.value),
        original_type=event.TYPE if event else None,
        original_id=str(event.id) if event else None,
        error=str(exc)[:4000] or type(exc).__name__,
        error_type=type(exc).__name__,
        attempts=attempts,
    )
    return DeadLettered(
        id=derive_id(cause, f"dead-letter:{service}"),
        type=DeadLettered.TYPE,
        version=DeadLettered.VERSION,
        source=service,
        occurred_at=utcnow(),
        tenant=tenant,
        conversation=conversation,
        correlation_id=correlation if isinstance(correlation, uuid.UUID) else uuid.UUID(str(correlation)),
        causation_id=event.id if event else None,
        replay=event.replay if event else None,
        data=data,
    )


def original_record(dle: Event) -> tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]:
    """The original topic, value, key and headers of a dead-lettered record (for redrive)."""
    d = dle.data
    value = d.original_value
    raw = base64.b64decode(value[7:]) if value.startswith("base64:") else value.encode()
    key = d.original_key.encode() if d.original_key is not None else None
    headers = [(k, v.encode()) for k, v in d.original_headers.items()]
    return d.original_topic, raw, key, headers


__all__ = ["dead_letter_event", "original_record"]
