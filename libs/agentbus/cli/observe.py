"""``agentbus events tail``, ``agentbus trace`` and ``agentbus replay``: reading and re-running the log."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from agentbus.settings import Settings

if TYPE_CHECKING:
    from agentbus.eventlog import Logged
    from agentbus.sealing import Keyring

events_app = typer.Typer(no_args_is_help=True, help="Read the event log.")


def parse_when(value: str | None) -> datetime | None:
    """ISO-8601, or a duration ago: 30s, 15m, 2h, 7d."""
    if not value:
        return None
    m = re.fullmatch(r"(\d+)([smhd])", value)
    if m:
        n, unit = int(m[1]), m[2]
        delta = {"s": timedelta(seconds=n), "m": timedelta(minutes=n), "h": timedelta(hours=n), "d": timedelta(days=n)}
        return datetime.now(UTC) - delta[unit]
    dt = datetime.fromisoformat(value)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def register(app: typer.Typer) -> None:
    app.add_typer(events_app, name="events")

    @events_app.command("tail")
    def tail(
        type_: list[str] = typer.Option([], "--type", "-t", help="event type, e.g. reply.generated (repeatable)"),
        conversation: str = typer.Option(None, "--conversation", help="tenant/channel/chat or just the chat id"),
        tenant: str = typer.Option(None, "--tenant"),
        as_json: bool = typer.Option(False, "--json", help="one JSON event per line"),
        from_beginning: bool = typer.Option(False, "--from-beginning"),
        limit: int = typer.Option(0, help="stop after this many events (0: follow until Ctrl-C)"),
    ) -> None:
        """Live stream of events, human-readable or JSON."""
        asyncio.run(_tail(Settings(), tuple(type_), conversation, tenant, as_json, from_beginning, limit))

    @app.command()
    def trace(
        message_id: str = typer.Argument(..., help="a message (event) id or correlation id"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """The causal chain of one message, from the event log itself."""
        code = asyncio.run(_trace(Settings(), message_id, as_json))
        raise typer.Exit(code)

    from agentbus.cli.replay import register as register_replay

    register_replay(app)


async def _tail(s: Settings, types: tuple[str, ...], conversation: str | None, tenant: str | None, as_json: bool,
                from_beginning: bool, limit: int) -> None:
    from agentbus.describe import summary
    from agentbus.eventlog import Filter, follow
    from agentbus.sealing.keystore import optional_keyring
    from agentbus.topics import all_topics

    console = Console(highlight=False)
    keep = Filter(types=types, tenant=tenant, conversation=conversation)
    n = 0
    async with optional_keyring(s) as keyring:
        async for logged in follow(s, all_topics(s.topic_prefix), keep, from_beginning=from_beginning,
                                   keyring=keyring):
            e = logged.event
            if as_json:
                print(e.to_bytes().decode(), flush=True)
            else:
                tag = f" [replay {e.replay.run}]" if e.replay else ""
                console.print(f"{e.occurred_at:%H:%M:%S.%f}"[:-3] + f"  [bold]{e.TYPE:<20}[/bold] "
                              f"{e.conversation:<32} {str(e.id)[:8]}  {summary(e)}{tag}")
            n += 1
            if limit and n >= limit:
                return


async def _indexed(s: Settings, wanted: str, keyring: Keyring | None) -> tuple[str, list[Logged]] | None:
    """The chain through the log index that ingress keeps in PostgreSQL; None when it has no such id or cannot
    be read (the log itself is then read)."""
    from agentbus.logindex import indexed_chain, tool_log_index

    async with tool_log_index(s) as index:
        chain = await indexed_chain(s, index, wanted, None, keyring) if index is not None else None
    if not chain:
        return None
    return str(chain[0].event.correlation_id), chain


async def _trace(s: Settings, wanted: str, as_json: bool) -> int:
    from agentbus.describe import summary
    from agentbus.eventlog import chain_of, read
    from agentbus.sealing.keystore import optional_keyring
    from agentbus.topics import all_topics

    try:
        uuid.UUID(wanted)
    except ValueError:
        print(f"not an id: {wanted!r}")
        return 2
    async with optional_keyring(s) as keyring:
        found = await _indexed(s, wanted, keyring)
        if found is None:  # not in the index (not indexed yet, or no index): read every topic
            found = chain_of(await read(s, all_topics(s.topic_prefix), keyring=keyring), wanted)
    if found is None:
        print(f"no event with id or correlation id {wanted}")
        return 1
    correlation, chain = found
    ids = {lg.event.id for lg in chain}
    by_id = {lg.event.id: lg for lg in chain}
    if as_json:
        print(json.dumps([{"topic": lg.topic, "trace_id": lg.trace_id, "event": json.loads(lg.event.to_bytes())}
                          for lg in chain], indent=2, ensure_ascii=False))
        return 0
    root = chain[0].event
    table = Table(title=f"correlation {correlation}", show_lines=False)
    for col in ("at", "+ms", "hop ms", "event", "source", "id", "details"):
        table.add_column(col)
    for lg in chain:
        e = lg.event
        parent = by_id.get(e.causation_id) if e.causation_id is not None and e.causation_id in ids else None
        hop = (e.occurred_at - parent.event.occurred_at).total_seconds() * 1000 if parent else 0.0
        since = (e.occurred_at - root.occurred_at).total_seconds() * 1000
        label = e.TYPE + (f" [replay {e.replay.run}]" if e.replay else "")
        table.add_row(f"{e.occurred_at:%H:%M:%S.%f}"[:-3], f"{since:.0f}", f"{hop:.0f}", label, e.source,
                      str(e.id)[:8], summary(e))
    console = Console(highlight=False)
    console.print(table)
    trace_ids = sorted({lg.trace_id for lg in chain if lg.trace_id})
    total = (chain[-1].event.occurred_at - root.occurred_at).total_seconds() * 1000
    console.print(f"{len(chain)} events, {total:.0f} ms from first to last")
    for tid in trace_ids:
        where = (f"{s.jaeger_url.rstrip('/')}/trace/{tid}" if s.jaeger_url
                 else "open it in Jaeger or any OTLP trace viewer")
        console.print(f"trace id: {tid}   ({where})")
    return 0
