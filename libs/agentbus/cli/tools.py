"""``agentbus send`` (a signed webhook, like a platform would send) and ``agentbus schemas``."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import typer


def signed_request(secret: str, payload: dict[str, object], msg_id: str | None = None) -> tuple[bytes, dict[str, str]]:
    """Body and Standard Webhooks headers for ``payload``, signed with ``secret``."""
    import orjson
    from standardwebhooks import Webhook

    body = orjson.dumps(payload).decode()
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    now = datetime.fromtimestamp(int(time.time()), UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body),
    }
    return body.encode(), headers


def register(app: typer.Typer) -> None:
    @app.command()
    def send(
        text: str = typer.Argument(..., help="the message"),
        channel: str = typer.Option("demo", help="a webhook channel id from agentbus.yaml"),
        conversation: str = typer.Option("demo-chat", help="conversation (chat) id"),
        sender: str = typer.Option("you", help="sender id"),
        url: str = typer.Option("http://127.0.0.1:8080", help="ingress base URL"),
        config: Path = typer.Option(None, "--config", "-c"),
        wait: float = typer.Option(30.0, help="seconds to wait for the reply at the demo inbox (0: don't)"),
        inbox: str = typer.Option("http://127.0.0.1:8099", help="demo inbox base URL"),
    ) -> None:
        """Send a signed webhook message to ingress, as a chat platform would, and print the answer."""
        import httpx

        from agentbus.channeltypes import WebhookChannel
        from agentbus.cli.stackcmds import default_config
        from agentbus.config import ConfigError, load_config

        try:
            cfg = load_config(config or default_config())
        except ConfigError as err:
            typer.echo(str(err), err=True)
            raise typer.Exit(2) from None
        ch = cfg.channel(channel)
        if not isinstance(ch, WebhookChannel):
            typer.echo(f"no webhook channel {channel!r} in the configuration", err=True)
            raise typer.Exit(2)
        msg_id = f"msg_{uuid.uuid4().hex}"
        body, headers = signed_request(
            ch.secret.value(),
            {"conversation": conversation, "sender": {"id": sender}, "text": text, "message_id": msg_id},
            msg_id,
        )
        t0 = time.perf_counter()
        resp = httpx.post(f"{url.rstrip('/')}/v1/webhooks/{channel}", content=body, headers=headers, timeout=30)
        typer.echo(f"ingress answered {resp.status_code} {resp.text} in {1000 * (time.perf_counter() - t0):.0f} ms")
        if resp.status_code >= 300 or not wait:
            raise typer.Exit(0 if resp.status_code < 300 else 1)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"{inbox}/replies", params={"in_reply_to": msg_id}, timeout=5).json()["replies"]
            except httpx.HTTPError:
                r = []
            if r:
                typer.echo(f"reply after {1000 * (time.perf_counter() - t0):.0f} ms:\n{r[0]['text']}")
                return
            time.sleep(0.05)
        typer.echo("no reply at the demo inbox yet (is `agentbus up` running with its inbox?)", err=True)
        raise typer.Exit(1)

    @app.command()
    def schemas(
        out: Path = typer.Option(Path("schemas"), help="output folder"),
        check: bool = typer.Option(False, help="fail if the committed schemas differ from the models"),
    ) -> None:
        """Write the JSON Schema of every event version and the AsyncAPI document of the topics (the contract
        other languages can read)."""
        from agentbus.schemas import diff_schemas, write_schemas

        if check:
            problems = diff_schemas(out)
            for p in problems:
                typer.echo(p, err=True)
            raise typer.Exit(1 if problems else 0)
        for path in write_schemas(out):
            typer.echo(str(path))
