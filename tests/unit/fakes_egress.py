"""In-memory fakes of egress's ports: they record what happened so tests assert on state.

``FakeDeliveryLedger`` keeps rows as the real ledger does: a claimed row stays 'pushing' until finished or
released, released rows are 'pending', every round's attempts add up, and a processed reply keeps its
first outcome.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentbus.events import Event, ReplyGenerated, ReplyGeneratedData
from agentbus.services.egress.ports import Claim, Outcome, Pushed
from agentbus.services.egress.progress import Applied, Finished


def _run(event: Event) -> str:
    return event.replay.run if event.replay else ""


@dataclass
class FakeDeliveryLedger:
    rows: dict[uuid.UUID, str] = field(default_factory=dict)  # reply id -> status
    attempts: dict[uuid.UUID, int] = field(default_factory=dict)  # reply id -> pushes of every round
    processed: dict[tuple[uuid.UUID, str], list[Event]] = field(default_factory=dict)  # (id, replay run)
    finish_failure: Exception | None = None  # raised by the next ``finish`` (a database outage), once

    async def claim(self, event: ReplyGenerated, target: str) -> Claim | list[Event]:
        if (event.id, "") in self.processed:
            return self.processed[(event.id, "")]
        status = self.rows.get(event.id)
        previous = self.attempts.get(event.id, 0)
        if status is None or status == "pending":
            self.rows[event.id] = "pushing"
            return Claim("claimed", previous)
        return Claim("ambiguous", previous)

    async def release(self, reply_id: uuid.UUID, attempts: int, error: str, http_status: int | None) -> None:
        if self.rows.get(reply_id) == "pushing":
            self.rows[reply_id] = "pending"
            self.attempts[reply_id] = self.attempts.get(reply_id, 0) + attempts

    async def finish(
        self, event: ReplyGenerated, target: str, outcome: Outcome, outputs: Sequence[Event]
    ) -> list[Event]:
        if self.finish_failure is not None:
            failure, self.finish_failure = self.finish_failure, None
            raise failure
        key = (event.id, "")
        if key not in self.processed:
            self.rows[event.id] = outcome.status
            self.attempts[event.id] = self.attempts.get(event.id, 0) + outcome.attempts
        return self.processed.setdefault(key, list(outputs))

    async def record_only(self, event: ReplyGenerated, outputs: Sequence[Event]) -> list[Event]:
        return self.processed.setdefault((event.id, _run(event)), list(outputs))


@dataclass
class FakeOutbound:
    """A platform that answers from ``script``: an exception is raised for that push, None delivers it."""

    script: list[BaseException | None] = field(default_factory=list)
    idempotent: bool = True
    rate: int | None = None
    pushes: list[uuid.UUID] = field(default_factory=list)  # reply id of every push made
    journal: list[str] = field(default_factory=list)  # "push", in order (shared with a FakeRateLimiter)

    def target(self, reply: ReplyGeneratedData) -> str:
        return f"{reply.channel}:{reply.chat.id}"

    def is_idempotent(self, reply: ReplyGeneratedData) -> bool:
        return self.idempotent

    def rate_for(self, reply: ReplyGeneratedData) -> int | None:
        return self.rate

    async def push(self, reply: ReplyGeneratedData, reply_id: uuid.UUID) -> Pushed:
        self.pushes.append(reply_id)
        self.journal.append("push")
        step = self.script.pop(0) if self.script else None
        if step is not None:
            raise step
        return Pushed(200, f"pm-{len(self.pushes)}")


@dataclass
class FakeRateLimiter:
    """Never waits; records every acquisition."""

    acquired: list[tuple[str, int | None]] = field(default_factory=list)
    journal: list[str] = field(default_factory=list)  # "acquire", in order (shared with a FakeOutbound)

    async def acquire(self, target: str, per_minute: int | None) -> None:
        self.acquired.append((target, per_minute))
        self.journal.append("acquire")


@dataclass
class FakeProgressStore:
    """progress_messages in memory, with the store's rules: a higher seq only, nothing after finish."""

    rows: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    async def advance(self, channel: str, in_reply_to: str, seq: int) -> Applied | None:
        row = self.rows.get((channel, in_reply_to))
        if row is None:
            self.rows[(channel, in_reply_to)] = {"seq": seq, "message_id": None, "finished": False}
            return Applied(None)
        if row["finished"] or row["seq"] >= seq:
            return None
        row["seq"] = seq
        return Applied(row["message_id"], row.get("typing_id"))

    async def set_typing(self, channel: str, in_reply_to: str, typing_id: str) -> bool:
        row = self.rows[(channel, in_reply_to)]
        row["typing_id"] = typing_id
        return bool(row["finished"])

    async def set_message(self, channel: str, in_reply_to: str, message_id: str) -> None:
        row = self.rows[(channel, in_reply_to)]
        row["message_id"] = row["message_id"] or message_id

    async def posting(self, channel: str, in_reply_to: str) -> None:
        self.rows[(channel, in_reply_to)]["posting_since"] = time.monotonic()

    async def finish(self, channel: str, in_reply_to: str) -> Finished:
        row = self.rows.setdefault((channel, in_reply_to), {"seq": 0, "message_id": None, "finished": False})
        row["finished"] = True
        since = row.get("posting_since")
        return Finished(row["message_id"], None if since is None else time.monotonic() - since, row.get("typing_id"))

    async def message(self, channel: str, in_reply_to: str) -> str | None:
        row = self.rows.get((channel, in_reply_to))
        return None if row is None else row["message_id"]
