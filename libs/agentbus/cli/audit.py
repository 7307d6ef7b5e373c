"""``agentbus audit``: the audit log ingress keeps (operator API writes, token changes), newest first."""

from __future__ import annotations

import asyncio
from typing import Any

import typer

from agentbus.settings import Settings


async def read_audit(settings: Settings, tenant: str | None, limit: int) -> list[Any]:
    from agentbus.cli.tokens import api_module, ingress_pool

    async with ingress_pool(settings) as pool:
        entries: list[Any] = await api_module("store").PgAuditLog(pool).list(tenant, limit)
        return entries


def register(app: typer.Typer) -> None:
    @app.command("audit")
    def audit(
        tenant: str = typer.Option(None, "--tenant", help="only this tenant's entries"),
        limit: int = typer.Option(50, "--limit", min=1, max=10000, help="at most this many, newest first"),
        as_json: bool = typer.Option(False, "--json", help="one JSON document instead of a table"),
    ) -> None:
        """List who did what through the operator API and the token commands."""
        entries = asyncio.run(read_audit(Settings(), tenant, limit))
        if as_json:
            import orjson

            typer.echo(orjson.dumps([vars(e) for e in entries], option=orjson.OPT_INDENT_2).decode())
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{len(entries)} audit entr{'y' if len(entries) == 1 else 'ies'}")
        for col in ("time", "actor", "tenant", "action", "target", "outcome", "detail"):
            table.add_column(col, overflow="fold")
        for e in entries:
            actor = f"{e.actor} ({e.actor_name})" if e.actor_name else e.actor
            table.add_row(e.at.isoformat(timespec="seconds"), actor, e.tenant or "-", e.action, e.target, e.outcome,
                          e.detail)
        Console(width=200).print(table)
