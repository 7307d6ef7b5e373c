"""``agentbus tokens create|list|revoke``: the operator API's tokens, in ingress's PostgreSQL schema.

The command line uses ingress's own token store (loaded through importlib: the kernel imports no service),
so a token made here is the one the API checks. ``create`` prints the token once; only its sha256 is
stored. Each creation and revocation is an ``audit.recorded`` event (actor ``cli``); when it cannot be
published, the token just created is removed again and the command fails.
"""

from __future__ import annotations

import asyncio
import importlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import typer

from agentbus.settings import Settings

tokens_app = typer.Typer(no_args_is_help=True, help="Create, list and revoke operator API tokens; rotate the "
                         "key that signs JWTs.")
ROLES = ("admin", "operator", "viewer")
_TENANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def refuse(message: str) -> typer.Exit:
    typer.echo(f"refused: {message}", err=True)
    return typer.Exit(2)


def api_module(name: str) -> Any:
    return importlib.import_module(f"agentbus.services.ingress.api.{name}")


@asynccontextmanager
async def ingress_pool(settings: Settings) -> AsyncIterator[Any]:
    """A small pool on ingress's schema, migrated (the command may run before ingress ever started)."""
    from agentbus.cli.admin import migrations_dir
    from agentbus.db import migrate, open_pool, schema_name

    schema = schema_name("ingress", settings)
    pool = await open_pool(settings, schema, max_size=1)
    try:
        await migrate(pool, schema, migrations_dir("ingress"))
        yield pool
    finally:
        await pool.close()


async def publish_audit(settings: Settings, **fields: Any) -> None:
    from agentbus.bus import Producer

    event = api_module("audit").audit_event(actor="cli", actor_name=None, source="cli", **fields)
    producer = Producer(settings, "cli")  # acks=all
    await producer.start()
    try:
        await producer.publish([event])
    finally:
        await producer.stop()


async def create_token(settings: Settings, name: str, tenant: str | None, role: str,
                       expires_days: float | None) -> tuple[Any, str]:
    """Store a new token and audit it; returns its record and the token (to be shown once)."""
    access, store = api_module("access"), api_module("store")
    record, token = access.mint(name, tenant, role, expires_days)
    async with ingress_pool(settings) as pool:
        tokens = store.PgTokenStore(pool)
        await tokens.create(record, access.token_hash(token))
        try:
            await publish_audit(settings, tenant=tenant, action="tokens.create", target=record.id, outcome="ok",
                                detail=f"{role} {name}")
        except BaseException:
            await tokens.delete(record.id)
            raise
    return record, token


async def revoke_token(settings: Settings, token_id: str) -> Any:
    """Revoke and audit; returns the record, or None when there is no such token."""
    store = api_module("store")
    async with ingress_pool(settings) as pool:
        tokens = store.PgTokenStore(pool)
        record = await tokens.get(token_id)
        if record is None:
            return None
        changed = await tokens.revoke(token_id)
        if changed:
            await publish_audit(settings, tenant=record.tenant, action="tokens.revoke", target=token_id,
                                outcome="ok", detail=record.name)
        return await tokens.get(token_id)


async def rotate_signing_key(settings: Settings) -> Any:
    """A new JWT signing key (the old one verifies what it signed until that expires); audited."""
    async with ingress_pool(settings) as pool:
        key = await api_module("auth_keys").PgSigningKeys(pool).rotate()
    await publish_audit(settings, tenant=None, action="tokens.rotate-signing-key", target=key.kid, outcome="ok")
    return key


async def list_tokens(settings: Settings, tenant: str | None) -> list[Any]:
    async with ingress_pool(settings) as pool:
        listed: list[Any] = await api_module("store").PgTokenStore(pool).list(tenant)
        return listed


def check_tenant(tenant: str) -> None:
    """A tenant id as agentbus.yaml writes one, and one the running configuration (or, offline, the file)
    declares."""
    from agentbus.cli.configcmd import known_config
    from agentbus.cli.stackcmds import default_config

    if not _TENANT.match(tenant):
        raise refuse(f"tenant: {tenant[:64]!r} is not a tenant id")
    known = known_config(default_config())
    if known is None:
        return
    cfg, where = known
    if tenant not in {t.id for t in cfg.tenants}:
        raise refuse(f"tenant: unknown tenant {tenant!r} in {where}")


def _when(d: Any) -> str:
    return d.isoformat(timespec="seconds") if d is not None else "-"


def register(app: typer.Typer) -> None:
    app.add_typer(tokens_app, name="tokens")

    @tokens_app.command("create")
    def create(
        name: str = typer.Option(..., "--name", help="what the token is for (shown in lists and the audit)"),
        owner: bool = typer.Option(False, "--owner", help="a platform-wide owner token (every tenant)"),
        tenant: str = typer.Option(None, "--tenant", help="the tenant the token belongs to"),
        role: str = typer.Option(None, "--role", help="admin, operator or viewer (with --tenant)"),
        expires_days: float = typer.Option(None, "--expires-days", min=0.001, help="expires after this many days"),
    ) -> None:
        """Create a token and print it (once: only its hash is kept)."""
        if not name.strip() or len(name) > 100 or any(ord(ch) < 32 for ch in name):
            raise refuse("name: 1 to 100 printable characters")
        if owner == (tenant is not None):
            raise refuse("give either --owner or --tenant T --role R")
        if owner and role is not None:
            raise refuse("role: an owner token has no tenant role")
        if not owner:
            if role not in ROLES:
                raise refuse(f"role: one of {', '.join(ROLES)}")
            check_tenant(tenant)
        try:
            record, token = asyncio.run(create_token(Settings(), name, None if owner else tenant,
                                                     "owner" if owner else role, expires_days))
        except Exception as exc:  # the database or the broker is away: nothing was created
            typer.echo(f"could not create the token: {type(exc).__name__}: {exc}"[:400], err=True)
            raise typer.Exit(1) from None
        typer.echo(f"created token {record.id} ({record.role}{'' if owner else ' of ' + tenant}); "
                   "it is shown only now:", err=True)
        typer.echo(token)

    @tokens_app.command("list")
    def list_(tenant: str = typer.Option(None, "--tenant", help="only this tenant's tokens")) -> None:
        """List tokens (never their secrets)."""
        from rich.console import Console
        from rich.table import Table

        rows = asyncio.run(list_tokens(Settings(), tenant))
        table = Table(title=f"{len(rows)} token(s)")
        for col in ("id", "name", "tenant", "role", "created", "expires", "revoked", "last used"):
            table.add_column(col)
        for r in rows:
            table.add_row(r.id, r.name, r.tenant or "(all: owner)", r.role, _when(r.created_at), _when(r.expires_at),
                          _when(r.revoked_at), _when(r.last_used_at))
        Console(width=200).print(table)

    @tokens_app.command("rotate-signing-key")
    def rotate() -> None:
        """Make a new key sign the operator API's JWTs; JWTs signed by the old one stay valid until they expire
        (every ingress replica picks the new key up within 30 seconds)."""
        try:
            key = asyncio.run(rotate_signing_key(Settings()))
        except Exception as exc:  # the database or the broker is away
            typer.echo(f"could not rotate the signing key: {type(exc).__name__}: {exc}"[:400], err=True)
            raise typer.Exit(1) from None
        typer.echo(f"signing key {key.kid} is active from {_when(key.created_at)}")

    @tokens_app.command("revoke")
    def revoke(token_id: str = typer.Argument(..., help="the token's id (the part after agb_)")) -> None:
        """Revoke a token: from now on every request with it is answered 401."""
        record = asyncio.run(revoke_token(Settings(), token_id))
        if record is None:
            typer.echo(f"no token {token_id!r}", err=True)
            raise typer.Exit(1)
        typer.echo(f"token {record.id} ({record.name}) revoked at {_when(record.revoked_at)}")
