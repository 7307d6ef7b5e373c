"""What the dead-letter and replay endpoints read from the event log, as small Protocols, and their adapters.

Both read the topics themselves (no consumer group, nothing committed): the dead-letter topic, bounded to its
latest records; and a replay run's events, found by the run id in their envelopes. Nothing here is kept
between requests, so every replica answers the same.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from agentbus.deadletters import Letter, RawSender, read_dead_letters, redrive_with
from agentbus.eventlog import Filter
from agentbus.events import DeadLettered, Event, ReplayRequested, ReplaySelected
from agentbus.logindex import LogIndex
from agentbus.replayruns import Originals, read_originals, result_topics, select_entries
from agentbus.sealing import Keyring
from agentbus.settings import Settings
from agentbus.topics import topic_of

DEAD_LETTER_SCAN = 5000  # records per partition of the dead-letter topic one request reads, the newest


class LogUnavailable(Exception):
    """The broker could not be read in time (the request is answered 503)."""


class DeadLetterStore(Protocol):
    async def letters(self) -> list[Letter]:
        """The latest dead letters (a bounded scan), oldest first."""
        ...

    async def redrive(self, letter: Letter) -> None:
        """Publish the letter's original record again (acks=all)."""
        ...


@dataclass
class RunEvents:
    """Everything the log holds of one replay run."""

    request: ReplayRequested | None = None
    selection: ReplaySelected | None = None
    produced: list[Event] = field(default_factory=list)  # the run's replies, deliveries, tools, inferences
    request_dead_letter: DeadLettered | None = None  # the selection itself failed for good


class ReplayLog(Protocol):
    async def run(self, run: str) -> RunEvents: ...

    async def originals(self) -> Originals:
        """The live replies and tool calls, to put the run's replies beside."""
        ...


class EntrySource(Protocol):
    async def select(self, entry_type: str, keep: Filter, limit: int) -> tuple[list[Event], bool, int]:
        """Live events of ``entry_type`` that ``keep`` accepts, oldest first, at most ``limit``; whether more
        matched; and how many matched that the log no longer holds (older than its retention)."""
        ...


T = TypeVar("T")


async def _guarded(what: str, read: Awaitable[T]) -> T:
    try:
        return await read
    except (TimeoutError, OSError) as exc:
        raise LogUnavailable(f"{what}: {type(exc).__name__}: {exc}"[:300]) from exc


class LogDeadLetters:
    def __init__(self, settings: Settings, sender: RawSender, scan: int = DEAD_LETTER_SCAN) -> None:
        self._settings, self._sender, self._scan = settings, sender, scan

    async def letters(self) -> list[Letter]:
        return await _guarded("dead letters", read_dead_letters(self._settings, timeout_s=20, scan=self._scan))

    async def redrive(self, letter: Letter) -> None:
        await redrive_with(self._sender, [letter])


class LogReplays:
    def __init__(self, settings: Settings, keyring: Keyring | None = None) -> None:
        self._s = settings
        self._keyring = keyring

    async def run(self, run: str) -> RunEvents:
        from agentbus.eventlog import read

        prefix = self._s.topic_prefix
        out = RunEvents()
        own = [topic_of(prefix, ReplayRequested), topic_of(prefix, ReplaySelected)]
        for lg in await _guarded("replay runs", read(self._s, own, lambda e: getattr(e.data, "run", None) == run)):
            if isinstance(lg.event, ReplayRequested):
                out.request = out.request or lg.event
            elif isinstance(lg.event, ReplaySelected):
                out.selection = out.selection or lg.event
        if out.request is None:
            return out
        request_id = str(out.request.id)

        def of_run(e: Event) -> bool:
            if e.replay is not None:
                return e.replay.run == run
            return isinstance(e, DeadLettered) and e.data.original_id == request_id

        for lg in await _guarded("replay results", read(self._s, result_topics(prefix), of_run,
                                                         keyring=self._keyring)):
            e = lg.event
            if isinstance(e, DeadLettered) and e.replay is None:
                out.request_dead_letter = e
            else:
                out.produced.append(e)
        return out

    async def originals(self) -> Originals:
        return await _guarded("replies", read_originals(self._s, self._keyring))


class LogEntries:
    def __init__(self, settings: Settings, keyring: Keyring | None = None, index: LogIndex | None = None) -> None:
        self._s = settings
        self._keyring = keyring
        self._index = index

    async def select(self, entry_type: str, keep: Filter, limit: int) -> tuple[list[Event], bool, int]:
        return await select_entries(self._s, entry_type, keep, limit, self._keyring, self._index)

