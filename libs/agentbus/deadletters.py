"""Dead letters, read and redriven: what ``agentbus dlq`` and the operator API share.

A dead letter keeps the original record's bytes, key and headers. Redriving publishes exactly that record
again to its original topic (acks=all), with one extra header ``redriven-from`` naming the dead letter. The
original event id is unchanged, so a consumer that already processed the event ignores it, and redriving
the same dead letter twice has the effects of redriving it once. Nothing else is published: the
``redriven-from`` header on the original topic is the record of what was redriven.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from agentbus.settings import Settings

if TYPE_CHECKING:
    from aiokafka.structs import ConsumerRecord

REDRIVEN_FROM = "redriven-from"


@dataclass(frozen=True)
class Letter:
    """One record of the dead-letter topic, parsed."""

    partition: int
    offset: int
    event: Any  # a DeadLettered event

    @property
    def id(self) -> str:
        return str(self.event.id)

    @property
    def tenant(self) -> str:
        """The tenant of the envelope ("unknown" when the original record could not be parsed)."""
        return str(self.event.tenant)

    def summary(self) -> dict[str, Any]:
        d = self.event.data
        return {
            "id": self.id,
            "time": self.event.occurred_at.isoformat(),
            "service": d.service,
            "original_type": d.original_type,
            "original_id": d.original_id,
            "original_topic": d.original_topic,
            "original_partition": d.original_partition,
            "original_offset": d.original_offset,
            "attempts": d.attempts,
            "error_type": d.error_type,
            "error": d.error,
            "redriven_from": d.original_headers.get(REDRIVEN_FROM),
            "dlq_partition": self.partition,
            "dlq_offset": self.offset,
        }


async def read_dead_letters(settings: Settings, timeout_s: float = 30.0, scan: int | None = None) -> list[Letter]:
    """Every dead letter, oldest first; with ``scan``, only the last ``scan`` records of each partition (an
    operator API request must not read a topic of unbounded length)."""
    from agentbus.eventlog import end_offsets, read_records
    from agentbus.events import parse_event
    from agentbus.topics import dead_letter_topic

    topic = dead_letter_topic(settings.topic_prefix)
    start = None
    if scan is not None:
        start = {tp: max(0, end - scan) for tp, end in (await end_offsets(settings, [topic])).items()}
    records = await read_records(settings, [topic], start=start, timeout_s=timeout_s)
    letters = [Letter(r.partition, r.offset, parse_event(r.value)) for r in records]
    letters.sort(key=lambda x: (x.event.occurred_at, x.partition, x.offset))
    return letters


def select(
    letters: list[Letter], ids: list[str] | None = None, type_: str | None = None, service: str | None = None
) -> list[Letter]:
    """Filter (all filters apply); one letter per dead-letter id, the latest (a redriven event that fails
    again is dead-lettered again under the same id)."""
    out: dict[str, Letter] = {}
    for x in letters:
        if ids and x.id not in ids:
            continue
        if type_ and x.event.data.original_type != type_:
            continue
        if service and x.event.data.service != service:
            continue
        out[x.id] = x
    return list(out.values())


def redrive_record(letter: Letter) -> tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]:
    """The original topic, value, key and headers, plus ``redriven-from`` (replacing an older one)."""
    from agentbus.bus.deadletter import original_record

    topic, value, key, headers = original_record(letter.event)
    headers = [(k, v) for k, v in headers if k != REDRIVEN_FROM]
    headers.append((REDRIVEN_FROM, letter.id.encode()))
    return topic, value, key, headers


class RawSender(Protocol):
    async def send_raw(self, topic: str, value: bytes, key: bytes | None,
                       headers: list[tuple[str, bytes]]) -> None: ...


async def redrive_with(sender: RawSender, letters: Sequence[Letter]) -> None:
    """Publish each letter's original record again through ``sender`` (it waits for acks=all)."""
    for letter in letters:
        topic, value, key, headers = redrive_record(letter)
        await sender.send_raw(topic, value, key, headers)


async def redrive(settings: Settings, letters: Sequence[Letter]) -> None:
    """Redrive through a producer of its own (the command line has no service's producer to borrow)."""
    from agentbus.bus import Producer

    producer = Producer(settings, "dlq-redrive")  # acks=all
    await producer.start()
    try:
        await redrive_with(producer, letters)
    finally:
        await producer.stop()


async def read_topic(settings: Settings, topic: str, timeout_s: float = 30.0) -> list[ConsumerRecord]:
    """Every record of ``topic`` from the beginning up to its end, without a consumer group."""
    from agentbus.eventlog import read_records

    return await read_records(settings, [topic], timeout_s=timeout_s)
