"""``agentbus dlq list`` and ``agentbus dlq redrive``: look at dead letters and send them back.

A dead letter keeps the original record's bytes, key and headers. Redriving publishes exactly that record
again to its original topic (acks=all), with one extra header ``redriven-from`` naming the dead letter. The
original event id is unchanged, so a consumer that already processed the event ignores it, and redriving
the same dead letter twice has the effects of redriving it once. Nothing else is published: the
``redriven-from`` header on the original topic is the record of what was redriven.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer

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


async def read_topic(settings: Settings, topic: str, timeout_s: float = 30.0) -> list[ConsumerRecord]:
    """Every record of ``topic`` from the beginning up to its end, without a consumer group."""
    from agentbus.eventlog import read_records

    return await read_records(settings, [topic], timeout_s=timeout_s)


async def read_dead_letters(settings: Settings, timeout_s: float = 30.0) -> list[Letter]:
    """Every dead letter, oldest first."""
    from agentbus.events import parse_event
    from agentbus.topics import dead_letter_topic

    records = await read_topic(settings, dead_letter_topic(settings.topic_prefix), timeout_s)
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


async def redrive(settings: Settings, letters: list[Letter]) -> None:
    from agentbus.bus import Producer

    producer = Producer(settings, "dlq-redrive")  # acks=all
    await producer.start()
    try:
        for letter in letters:
            topic, value, key, headers = redrive_record(letter)
            await producer.send_raw(topic, value, key, headers)
    finally:
        await producer.stop()


def _table(letters: list[Letter], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("id", "time", "service", "original type", "original topic/partition/offset", "attempts", "error"):
        table.add_column(col, overflow="fold")
    for x in letters:
        s = x.summary()
        table.add_row(
            s["id"], s["time"], s["service"], s["original_type"] or "(unparseable)",
            f"{s['original_topic']}/{s['original_partition']}/{s['original_offset']}", str(s["attempts"]),
            f"{s['error_type']}: {s['error'][:200]}",
        )
    Console(width=200).print(table)


def _settings(prefix: str | None) -> Settings:
    settings = Settings()
    if prefix:
        settings.topic_prefix = prefix
    return settings


def register(app: typer.Typer) -> None:
    dlq = typer.Typer(no_args_is_help=True, help="Dead letters: list them, redrive them to their original topic.")
    app.add_typer(dlq, name="dlq")

    @dlq.command("list")
    def list_cmd(
        type_: str = typer.Option(None, "--type", help="only dead letters of this original event type"),
        service: str = typer.Option(None, "--service", help="only dead letters from this service"),
        as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
        prefix: str = typer.Option(None, envvar="AGENTBUS_TOPIC_PREFIX", help="topic prefix (default: agentbus)"),
    ) -> None:
        """List the dead-letter topic from its beginning to its current end."""
        import orjson

        letters = asyncio.run(read_dead_letters(_settings(prefix)))
        letters = [x for x in letters if (not type_ or x.event.data.original_type == type_)
                   and (not service or x.event.data.service == service)]
        if as_json:
            typer.echo(orjson.dumps([x.summary() for x in letters], option=orjson.OPT_INDENT_2).decode())
            return
        _table(letters, f"{len(letters)} dead letter(s)")

    @dlq.command("redrive")
    def redrive_cmd(
        ids: list[str] = typer.Option(None, "--id", help="a dead letter id (repeatable)"),
        type_: str = typer.Option(None, "--type", help="every dead letter of this original event type"),
        all_: bool = typer.Option(False, "--all", help="every dead letter"),
        dry_run: bool = typer.Option(False, "--dry-run", help="show what would be redriven, publish nothing"),
        prefix: str = typer.Option(None, envvar="AGENTBUS_TOPIC_PREFIX", help="topic prefix (default: agentbus)"),
    ) -> None:
        """Publish dead letters' original records again to their original topics (same key, headers, id)."""
        if not (ids or type_ or all_):
            typer.echo("say which dead letters: --id ID (repeatable), --type TYPE or --all", err=True)
            raise typer.Exit(2)
        settings = _settings(prefix)
        chosen = select(asyncio.run(read_dead_letters(settings)), ids, type_)
        missing = sorted(set(ids or ()) - {x.id for x in chosen})
        if missing:
            typer.echo(f"no such dead letter: {', '.join(missing)}; nothing redriven", err=True)
            raise typer.Exit(1)
        if not chosen:
            typer.echo("no dead letters match; nothing redriven")
            return
        for x in chosen:
            d = x.event.data
            verb = "would redrive" if dry_run else "redriving"
            typer.echo(f"{verb} {x.id} ({d.original_type or 'unparseable'}) to "
                       f"{d.original_topic} key={d.original_key}")
        if dry_run:
            typer.echo(f"dry run: {len(chosen)} dead letter(s) would be redriven")
            return
        asyncio.run(redrive(settings, chosen))
        typer.echo(f"redriven: {len(chosen)}")
