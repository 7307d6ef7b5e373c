"""``agentbus forget --tenant T --user U``: forget a person, everywhere.

Publishes a ``user.erasure_requested`` command with its audit event (actor ``cli``), acks=all, as the operator
API does; every service that keeps text deletes the person's rows and answers with a ``user.erased``, and the
person's data key is deleted, so their text in the event log reads ``[forgotten]``. With ``--wait`` (the
default) the command follows the answers until every service has given its own, and prints what each deleted.
"""

from __future__ import annotations

import asyncio
from typing import Any

import typer

from agentbus.settings import Settings


def refuse(message: str) -> typer.Exit:
    typer.echo(f"refused: {message}", err=True)
    return typer.Exit(2)


async def request_erasure(settings: Settings, tenant: str, user: str, wait_s: float) -> tuple[Any, list[Any]]:
    """Publish the command and its audit; then the ``user.erased`` answers that came within ``wait_s``."""
    from agentbus.bus import Producer
    from agentbus.cli.tokens import api_module
    from agentbus.erasure import ERASERS, erasure_requested
    from agentbus.eventlog import end_offsets, follow
    from agentbus.events import UserErased
    from agentbus.topics import topics_of_type

    command = erasure_requested(tenant, user, "cli", source="cli")
    audit = api_module("audit").audit_event(actor="cli", actor_name=None, tenant=tenant, action="users.forget",
                                            target=user, outcome="ok", source="cli")
    topics = topics_of_type(settings.topic_prefix, UserErased.TYPE)
    start = await end_offsets(settings, topics) if wait_s > 0 else {}
    producer = Producer(settings, "cli")
    await producer.start()
    try:
        await producer.publish([command, audit])
    finally:
        await producer.stop()
    answers: dict[str, Any] = {}
    if wait_s <= 0:
        return command, []

    async def gather() -> None:
        async for logged in follow(settings, topics, start=start):
            e = logged.event
            if isinstance(e, UserErased) and e.data.request_id == command.id:
                answers.setdefault(e.data.service, e)
                if set(ERASERS) <= set(answers):
                    return

    try:
        await asyncio.wait_for(gather(), wait_s)
    except TimeoutError:
        pass
    return command, [answers[s] for s in ERASERS if s in answers]


def register(app: typer.Typer) -> None:
    @app.command("forget")
    def forget(
        tenant: str = typer.Option(..., "--tenant", help="the tenant the person belongs to"),
        user: str = typer.Option(..., "--user", help="the person's sender id, as the platform gives it"),
        wait: float = typer.Option(60.0, "--wait", min=0, help="seconds to wait for every service's answer "
                                   "(0: publish and return)"),
        yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    ) -> None:
        """Forget a person: delete their text from every store and shred it in the event log (audited)."""
        from agentbus.erasure import ERASERS, valid_user

        if (why := valid_user(user)) is not None:
            raise refuse(f"user: {why}")
        if not yes and not typer.confirm(f"Forget everything about {user!r} of tenant {tenant!r}? This cannot "
                                         "be undone", default=False):
            raise typer.Exit(1)
        try:
            command, answers = asyncio.run(request_erasure(Settings(), tenant, user, wait))
        except Exception as exc:  # the broker is away: nothing was acknowledged
            typer.echo(f"could not publish the erasure: {type(exc).__name__}: {exc}"[:400], err=True)
            raise typer.Exit(1) from None
        typer.echo(f"erasure of {user!r} requested (event {command.id})")
        for a in answers:
            counts = ", ".join(f"{n} {store}" for store, n in sorted(a.data.deleted.items())) or "no rows"
            keys = f", {a.data.keys_deleted} key{'s' if a.data.keys_deleted != 1 else ''} deleted" \
                if a.data.keys_deleted else ""
            typer.echo(f"  {a.data.service}: {counts}{keys}")
        missing = [s for s in ERASERS if s not in {a.data.service for a in answers}]
        if wait > 0 and missing:
            typer.echo(f"not answered yet within {wait:g} s: {', '.join(missing)} (the command is on the bus; "
                       "they erase when they run)", err=True)
            raise typer.Exit(3)
