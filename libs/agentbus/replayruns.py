"""Replay runs: selecting the live events to re-run, collecting what the run produced, and the report that puts
each replayed reply beside its live original; shared by ``agentbus replay`` and the operator API.

A run is nothing but events: the replayed copies carry the run in their envelope, so its outcome is read back
from the log by run id (``Results``), wherever it was started and whoever asks.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentbus.events import (
    DeadLettered,
    DeliveryCompleted,
    Event,
    InferenceCompleted,
    ReplyGenerated,
    ToolCalled,
)
from agentbus.ids import reply_id, reply_id_of_context
from agentbus.sealing import Keyring
from agentbus.settings import Settings

if TYPE_CHECKING:
    from agentbus.logindex import LogIndex

ENTRY = {"message": "message.received", "job": "job.triggered", "context": "context.assembled"}


def result_topics(prefix: str) -> list[str]:
    """Where a run's outcome shows: replies, deliveries, tool calls, inferences, and dead letters."""
    from agentbus.topics import dead_letter_topic, topics_of_type

    return [*topics_of_type(prefix, "reply.generated"), *topics_of_type(prefix, "delivery.completed"),
            *topics_of_type(prefix, ToolCalled.TYPE), *topics_of_type(prefix, "inference.completed"),
            dead_letter_topic(prefix)]


async def select_entries(settings: Settings, entry_type: str, keep: Any, limit: int,
                         keyring: Keyring | None = None,
                         index: LogIndex | None = None) -> tuple[list[Event], bool, int]:
    """The live events of ``entry_type`` (every version's topic) that ``keep`` (an ``eventlog.Filter``) accepts,
    oldest first, at most ``limit``; whether more matched; and how many matched that the log no longer holds
    (known only with the log ``index``, which is used when given: it reads the matching offsets instead of the
    whole topics). A person's text is opened with ``keyring``, so a forgotten person's messages are replayed as
    ``[forgotten]``."""
    from agentbus.eventlog import read
    from agentbus.logindex import indexed_selection
    from agentbus.topics import topics_of_type

    topics = topics_of_type(settings.topic_prefix, entry_type)
    if index is not None and keep.tenant:
        return await indexed_selection(settings, index, topics, keep, limit, keyring)
    matched = [lg.event for lg in await read(settings, topics, keep, keyring=keyring) if lg.event.replay is None]
    return matched[:limit], len(matched) > limit, 0


@dataclass
class Originals:
    """The live replies and tool calls a run's replies are put beside."""

    replies: dict[uuid.UUID, ReplyGenerated] = field(default_factory=dict)
    tools: dict[uuid.UUID, list[ToolCalled]] = field(default_factory=dict)

    def add(self, e: Event) -> None:
        if e.replay is not None:
            return
        if isinstance(e, ReplyGenerated):
            self.replies[e.id] = e
        elif isinstance(e, ToolCalled):
            _add_tool(self.tools, e)


async def read_originals(settings: Settings, keyring: Keyring | None = None) -> Originals:
    from agentbus.eventlog import read
    from agentbus.topics import topics_of_type

    prefix = settings.topic_prefix
    out = Originals()
    topics = [*topics_of_type(prefix, "reply.generated"), *topics_of_type(prefix, ToolCalled.TYPE)]
    for lg in await read(settings, topics, lambda e: e.replay is None, keyring=keyring):
        out.add(lg.event)
    return out


@dataclass
class Results:
    """What a run produced so far, by the reply id of each entry event (``wanted``: reply id → entry id)."""

    wanted: Mapping[uuid.UUID, uuid.UUID]
    replayed: dict[uuid.UUID, ReplyGenerated] = field(default_factory=dict)
    failed: dict[uuid.UUID, str] = field(default_factory=dict)
    deliveries: dict[uuid.UUID, str] = field(default_factory=dict)
    tools: dict[uuid.UUID, list[ToolCalled]] = field(default_factory=dict)

    def add(self, e: Event) -> None:
        """Take one event of the run (the caller keeps to the run's events)."""
        if isinstance(e, ReplyGenerated) and e.id in self.wanted:
            self.replayed[e.id] = e
        elif isinstance(e, ToolCalled):
            _add_tool(self.tools, e)
        elif isinstance(e, DeliveryCompleted):
            self.deliveries[e.data.reply_id] = e.data.status
        elif isinstance(e, InferenceCompleted) and e.data.outcome == "failed" and e.causation_id is not None:
            rid = reply_id_of_context(e.causation_id)
            if rid in self.wanted:
                self.failed[rid] = e.data.error or "failed"
        elif isinstance(e, DeadLettered) and e.causation_id is not None:
            failed = self._reply_of_failed(e.causation_id)
            if failed is not None:
                self.failed.setdefault(failed, f"dead-lettered by {e.data.service}: {e.data.error}"[:500])

    def _reply_of_failed(self, cause: uuid.UUID) -> uuid.UUID | None:
        """The entry's reply whose chain stopped at ``cause`` (an entry, its context, or the reply itself)."""
        by_entry = {entry: rid for rid, entry in self.wanted.items()}
        candidates = [by_entry.get(cause), reply_id_of_context(cause), cause]
        return next((rid for rid in candidates if rid is not None and rid in self.wanted), None)

    @property
    def finished(self) -> set[uuid.UUID]:
        """Replies replayed and recorded by egress, or failed on the way."""
        return set(self.replayed) & set(self.deliveries) | set(self.failed)


def wanted_of(entries: Iterable[tuple[uuid.UUID, str]]) -> dict[uuid.UUID, uuid.UUID]:
    """reply id → entry id, for entries given as (id, type)."""
    return {reply_id(eid, etype): eid for eid, etype in entries}


def report_rows(entries: Sequence[tuple[uuid.UUID, str]], conversations: Mapping[uuid.UUID, str],
                originals: Originals, results: Results) -> list[dict[str, Any]]:
    """One row per entry event: the live reply beside the replayed one, the delivery, the tools of each."""
    rows: list[dict[str, Any]] = []
    for eid, etype in entries:
        rid = reply_id(eid, etype)
        orig, new = originals.replies.get(rid), results.replayed.get(rid)
        rows.append({
            "entry_id": str(eid), "conversation": conversations.get(eid), "reply_id": str(rid),
            "original_model": orig.data.model if orig else None, "original": orig.data.text if orig else None,
            "replayed_model": new.data.model if new else None, "replayed": new.data.text if new else None,
            "changed": (orig.data.text != new.data.text) if orig and new else None,
            "delivery": results.deliveries.get(rid), "error": results.failed.get(rid),
            "original_tools": [tool_line(t) for t in originals.tools.get(rid, [])],
            "replayed_tools": [tool_line(t) for t in results.tools.get(rid, [])],
        })
    return rows


def summary(rows: Sequence[Mapping[str, Any]], results: Results) -> dict[str, int]:
    pushed = [r for r in rows if r["delivery"] not in (None, "suppressed")]
    return {"selected": len(rows), "replayed": len(results.replayed), "failed": len(results.failed),
            "changed": sum(1 for r in rows if r["changed"]), "pushed_to_channels": len(pushed)}


def _add_tool(by_reply: dict[uuid.UUID, list[ToolCalled]], e: ToolCalled) -> None:
    if e.causation_id is not None:
        by_reply.setdefault(reply_id_of_context(e.causation_id), []).append(e)


def tool_line(t: ToolCalled) -> str:
    """One tool call of an answer: step, tool, arguments, outcome and the start of its result."""
    d = t.data
    args = json.dumps(d.arguments, ensure_ascii=False) if isinstance(d.arguments, dict) else d.arguments
    how = "reused" if d.reused else f"{d.latency_ms:.0f} ms"
    return f"{d.step}. {d.tool}({args[:80]}) → {d.outcome} ({how}): {' '.join(d.result.split())[:80]}"
