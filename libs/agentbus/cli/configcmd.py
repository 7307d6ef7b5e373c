"""``agentbus config apply|export|show``: the running platform's configuration, read from and written to its
topic (every replica of every service applies a new version without a restart).

``apply FILE`` validates the file (an invalid one is refused naming the key, and nothing is published),
prints what it changes entity by entity, and publishes it as the next version unless ``--dry-run``; the
write is audited (actor ``cli``). ``export`` prints the running version as YAML, the form ``apply`` takes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer

from agentbus.settings import Settings

config_app = typer.Typer(no_args_is_help=True, help="Show, export and apply the running platform's configuration.")


def refuse(message: str) -> typer.Exit:
    typer.echo(f"refused: {message}", err=True)
    return typer.Exit(2)


async def _current(settings: Settings) -> Any:
    from agentbus.liveconfig import read_log

    latest, _ = await read_log(settings)
    if latest is None:
        raise refuse("no configuration is published yet: start the platform (its services seed it from their file)")
    return latest


def known_config(path: Path) -> tuple[Any, str] | None:
    """The configuration a check of the command line holds names against: the running one when the broker
    answers (within 10 s), else the file at ``path`` when there is one; None when neither is here."""
    from agentbus.config import ConfigError, load_config, parse_config
    from agentbus.liveconfig import read_log

    async def running() -> Any:
        latest, _ = await asyncio.wait_for(read_log(Settings()), 10)
        return latest

    try:
        latest = asyncio.run(running())
    except Exception:  # no broker here (an offline check): the file is what there is
        latest = None
    try:
        if latest is not None:
            label = f"the running configuration (version {latest.data.version})"
            return parse_config(latest.data.document, source=label), label
        if path.exists():
            return load_config(path), str(path)
    except ConfigError as err:
        raise refuse(str(err)) from None
    return None


def to_yaml(document: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False)


async def _apply(settings: Settings, path: Path, dry_run: bool, expected: int | None) -> int:
    from agentbus.bus import Producer
    from agentbus.cli.tokens import publish_audit
    from agentbus.config import ConfigError, load_document
    from agentbus.configwriter import ConfigConflict, ConfigRefused, ConfigWriter, NoConfig, pg_lock

    try:
        document = load_document(path)
    except ConfigError as err:
        raise refuse(str(err)) from None
    producer = Producer(settings, "cli")
    await producer.start()
    try:
        writer = ConfigWriter(settings, producer, pg_lock(settings.database_url, settings.topic_prefix), "cli")
        try:
            outcome = await writer.write(lambda _old: document, actor="cli", reason="apply",
                                         expected_version=expected, dry_run=dry_run)
        except ConfigRefused as err:
            raise refuse(str(err).replace("configuration:", f"{path}:", 1)) from None
        except (ConfigConflict, NoConfig) as err:
            raise refuse(str(err)) from None
    finally:
        await producer.stop()
    for line in outcome.changes:
        typer.echo(line)
    if not outcome.changes:
        typer.echo(f"no change: the platform already runs this configuration (version {outcome.version})")
        return 0
    if outcome.published is None:
        typer.echo(f"dry run: {len(outcome.changes)} change(s) to version {outcome.base_version}, nothing published")
        return 0
    await publish_audit(settings, tenant=None, action="config.apply", target=f"version {outcome.version}",
                        outcome="ok", detail="; ".join(outcome.changes)[:1000])
    typer.echo(f"applied: version {outcome.version} (was {outcome.base_version})")
    return 0


def register(app: typer.Typer) -> None:
    @config_app.command("apply")
    def apply(
        file: Path = typer.Argument(..., help="an agentbus.yaml"),
        dry_run: bool = typer.Option(False, "--dry-run", help="show what would change; publish nothing"),
        expected_version: int = typer.Option(None, "--expected-version",
                                             help="refuse if the running version is not this one"),
    ) -> None:
        """Validate FILE, show what it changes, and publish it as the next version of the configuration."""
        raise typer.Exit(asyncio.run(_apply(Settings(), file, dry_run, expected_version)))

    @config_app.command("export")
    def export(output: Path = typer.Option(None, "-o", "--output", help="write here instead of stdout")) -> None:
        """The running configuration as YAML (credentials stay {env: NAME} references)."""
        latest = asyncio.run(_current(Settings()))
        text = f"# agentbus configuration, version {latest.data.version}\n" + to_yaml(latest.data.document)
        if output is None:
            typer.echo(text, nl=False)
        else:
            output.write_text(text, encoding="utf-8")
            typer.echo(f"version {latest.data.version} written to {output}", err=True)

    @config_app.command("show")
    def show() -> None:
        """The running version: number, digest, who wrote it and when, what it changed."""
        d = asyncio.run(_current(Settings())).data
        typer.echo(f"version {d.version}  digest {d.digest[:12]}  by {d.actor} ({d.reason})  at {d.at.isoformat()}")
        for line in d.changes:
            typer.echo(f"  {line}")

    app.add_typer(config_app, name="config")
