"""``agentbus jobs create|list|pause|resume|cancel``: scheduled jobs from the command line.

Changes are ``job.requested`` v2 commands published to the bus (acks=all), like the agent's schedule tool
publishes them, never a write to the scheduler's tables: the scheduler applies them once, in the order
they were issued. A command is checked here first with the scheduler's own checks (``agentbus.jobs``) and,
when the configuration can be read, against its channels; bad input is refused with exit code 2 and
nothing is published. ``list`` reads the scheduler's admin endpoint ``/v1/jobs``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer

from agentbus.settings import Settings

jobs_app = typer.Typer(no_args_is_help=True, help="Create, list, pause, resume and cancel scheduled jobs.")

TENANT = typer.Option(..., "--tenant", help="the tenant the job belongs to")
CHANNEL = typer.Option(..., "--channel", help="the channel instance (from agentbus.yaml) the job posts into")
CHAT = typer.Option(..., "--chat", help="the chat (conversation) id the job posts into")
CONFIG = typer.Option(None, "--config", "-c", help="agentbus.yaml to check the channel against "
                      "(default: AGENTBUS_CONFIG_FILE or ./agentbus.yaml, when present)")


def refuse(message: str) -> typer.Exit:
    typer.echo(f"refused: {message}", err=True)
    return typer.Exit(2)


def check_target(config: Path | None, tenant: str, channel: str, agent: str | None) -> None:
    """The channel must be the tenant's (and the agent known), as the scheduler will check."""
    from agentbus.cli.configcmd import known_config
    from agentbus.cli.stackcmds import default_config
    from agentbus.config import ConfigError, load_config

    if config is not None:  # the file named on the command line, as asked
        try:
            cfg, where = load_config(config), str(config)
        except ConfigError as err:
            raise refuse(str(err)) from None
    elif (known := known_config(default_config())) is not None:
        cfg, where = known
    else:
        typer.echo("note: no configuration here, the channel is checked by the scheduler only", err=True)
        return
    ch = cfg.channel(channel)
    if ch is None:
        raise refuse(f"channel: unknown channel {channel!r} in {where}")
    if ch.tenant != tenant:
        raise refuse(f"channel: {channel!r} is a channel of tenant {ch.tenant!r}, not {tenant!r}")
    if agent is not None and cfg.agent(agent) is None:
        raise refuse(f"agent: unknown agent {agent!r} in {where}")


def publish(tenant: str, channel: str, chat: str, cmd: Any) -> None:
    from agentbus.bus import Producer
    from agentbus.jobs import job_requested

    event = job_requested(cmd, tenant=tenant, channel=channel, chat=chat, source="cli")

    async def send() -> None:
        producer = Producer(Settings(), "cli")  # acks=all
        await producer.start()
        try:
            await producer.publish([event])
        finally:
            await producer.stop()

    try:
        asyncio.run(send())
    except Exception as exc:  # the broker is away: say so, and fail (nothing was acknowledged)
        typer.echo(f"could not publish the command: {type(exc).__name__}: {exc}"[:400], err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{cmd.action} job {cmd.job_id}: requested (event {event.id})")


def command(action: str, job_id: str, **fields: Any) -> Any:
    from agentbus.jobs import JobCommandError, build_command

    try:
        return build_command(action, job_id, requested_by="cli", **fields)
    except JobCommandError as err:
        raise refuse(str(err)) from None


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")

    @jobs_app.command("create")
    def create(
        tenant: str = TENANT,
        channel: str = CHANNEL,
        chat: str = CHAT,
        prompt: str = typer.Option(..., "--prompt", help="what the agent is asked each time the job fires"),
        cron: str = typer.Option(None, "--cron", help='a cron expression, e.g. "0 9 * * 1-5"'),
        every: float = typer.Option(None, "--every", help="seconds between runs"),
        at: str = typer.Option(None, "--at", help="one instant, ISO-8601 (without an offset: in --timezone)"),
        timezone: str = typer.Option("UTC", "--timezone", help="IANA time zone of --cron and --at"),
        agent: str = typer.Option(None, "--agent", help="the agent that answers (default: the channel's)"),
        chat_type: str = typer.Option("group", "--chat-type", help="direct or group"),
        job_id: str = typer.Option(None, "--id", help="the job's id (default: a new one)"),
        config: Path = CONFIG,
    ) -> None:
        """Create a job (or replace the job with this --id)."""
        from agentbus.events import Chat
        from agentbus.jobs import JobCommandError, new_job_id, schedule_of

        if chat_type not in ("direct", "group"):
            raise refuse(f"chat-type: must be direct or group, not {chat_type!r}")
        try:
            schedule = schedule_of(cron=cron, every_s=every, at=at, timezone=timezone)
        except JobCommandError as err:
            raise refuse(str(err).replace("cron, every, at", "--cron, --every, --at")) from None
        cmd = command("create", job_id or new_job_id(), schedule=schedule, channel=channel,
                      chat=Chat.model_validate({"id": chat, "type": chat_type}), prompt=prompt, agent=agent)
        check_target(config, tenant, channel, agent)
        publish(tenant, channel, chat, cmd)

    def change(action: str) -> None:
        @jobs_app.command(action)
        def cmd(
            job_id: str = typer.Option(..., "--id", help="the job's id"),
            tenant: str = TENANT,
            channel: str = typer.Option(..., "--channel", help="the job's channel (its commands stay in order)"),
            chat: str = typer.Option(..., "--chat", help="the job's chat"),
        ) -> None:
            publish(tenant, channel, chat, command(action, job_id))

        cmd.__doc__ = {"pause": "Pause a job (its schedule is kept).",
                       "resume": "Resume a paused job from its next due time (missed runs are not made up).",
                       "cancel": "Cancel a job for good (its id cannot be used again)."}[action]

    for action in ("pause", "resume", "cancel"):
        change(action)

    @jobs_app.command("list")
    def list_(
        tenant: str = typer.Option(None, "--tenant"),
        channel: str = typer.Option(None, "--channel"),
        chat: str = typer.Option(None, "--chat"),
        scheduler_url: str = typer.Option(None, "--scheduler-url",
                                          help="the scheduler's admin URL (default: http://127.0.0.1:<its port>)"),
        as_json: bool = typer.Option(False, "--json", help="one JSON document instead of a table"),
    ) -> None:
        """List jobs with their state, schedule and next due time (the scheduler's /v1/jobs)."""
        import httpx

        url = (scheduler_url or f"http://127.0.0.1:{Settings().port_for('scheduler')}").rstrip("/")
        params = {k: v for k, v in (("tenant", tenant), ("channel", channel), ("chat", chat)) if v is not None}
        try:
            resp = httpx.get(f"{url}/v1/jobs", params=params, timeout=15)
        except httpx.HTTPError as exc:
            typer.echo(f"could not reach the scheduler at {url}: {type(exc).__name__}: {exc}", err=True)
            raise typer.Exit(1) from None
        if resp.status_code >= 400:
            raise refuse(resp.json().get("error", resp.text) if "json" in resp.headers.get("content-type", "")
                         else f"{resp.status_code} {resp.text[:200]}")
        jobs = resp.json()["jobs"]
        if as_json:
            typer.echo(json.dumps(jobs, ensure_ascii=False, indent=2))
            return
        _table(jobs)


def _table(jobs: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(jobs)} job(s)")
    for col in ("id", "state", "schedule", "time zone", "next due", "chat", "prompt"):
        table.add_column(col)
    for j in jobs:
        s = j["schedule"]
        table.add_row(j["job_id"], j["state"], f"{s['kind']} {s['expr']}", j["timezone"], j["next_due"] or "-",
                      f"{j['tenant']}/{j['channel']}/{j['chat']['id']}", j["prompt"][:60])
    Console().print(table)
