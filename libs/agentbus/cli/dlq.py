"""``agentbus dlq list`` and ``agentbus dlq redrive``: look at dead letters and send them back (the reading
and redriving live in ``agentbus.deadletters``, shared with the operator API).

A dead letter keeps the original record's bytes, key and headers. Redriving publishes exactly that record
again to its original topic (acks=all), with one extra header ``redriven-from`` naming the dead letter. The
original event id is unchanged, so a consumer that already processed the event ignores it, and redriving
the same dead letter twice has the effects of redriving it once. Nothing else is published: the
``redriven-from`` header on the original topic is the record of what was redriven.
"""

from __future__ import annotations

import asyncio

import typer

from agentbus.deadletters import REDRIVEN_FROM, Letter, read_dead_letters, read_topic, redrive, redrive_record, select
from agentbus.settings import Settings

__all__ = ["REDRIVEN_FROM", "Letter", "read_dead_letters", "read_topic", "redrive", "redrive_record", "select",
           "register"]


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
