"""Upcasters: how an event of version N becomes version N+1.

A breaking change to an event is a new version (a new topic ``<type>.v<N+1>``) with an upcaster here, so
events already in the log, and producers not yet upgraded, keep working: consumers subscribe to every
version's topic and handle only the newest shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentbus.events import CATALOGUE, Event

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def _inference_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in data.items() if k not in ("prompt_tokens", "completion_tokens")}
    out["usage"] = {"input_tokens": data.get("prompt_tokens"), "output_tokens": data.get("completion_tokens")}
    return out


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("inference.completed", 1): _inference_v1_to_v2,
}


def latest_version(event_type: str) -> int:
    return max(v for (t, v) in CATALOGUE if t == event_type)


def upcast(event: Event) -> Event:
    """The event at the newest version of its type (the same object when it already is)."""
    while event.VERSION < latest_version(event.TYPE):
        step = UPCASTERS.get((event.TYPE, event.VERSION))
        if step is None:
            raise LookupError(f"no upcaster from {event.TYPE} v{event.VERSION}")
        target = CATALOGUE[(event.TYPE, event.VERSION + 1)]
        raw = event.model_dump(mode="json")
        raw["version"] = target.VERSION
        raw["data"] = step(raw["data"])
        event = target.model_validate(raw)
    return event
