"""``agentbus up`` and ``agentbus run``."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from agentbus.settings import SERVICES

if TYPE_CHECKING:  # the stack is imported when a command runs (it pulls in the embedded engines)
    from agentbus.config import PlatformConfig
    from agentbus.stack.stack import Stack


def default_config() -> Path:
    env = os.environ.get("AGENTBUS_CONFIG_FILE")
    if env:
        return Path(env)
    for p in (Path("agentbus.yaml"), Path("infra/agentbus.yaml")):
        if p.exists():
            return p
    return Path("agentbus.yaml")


def register(app: typer.Typer) -> None:
    @app.command()
    def run(service: str = typer.Argument(..., help="one of: " + ", ".join(SERVICES))) -> None:
        """Run one service in the foreground (what each container runs)."""
        if service not in SERVICES:
            raise typer.BadParameter(f"unknown service {service!r}; choose one of {', '.join(SERVICES)}")
        from agentbus.service import run as run_service

        run_service(service)

    @app.command()
    def up(
        config: Path = typer.Option(None, "--config", "-c", help="agentbus.yaml (default: ./agentbus.yaml, infra/)"),
        home: Path = typer.Option(Path(".agentbus"), help="where the embedded stack keeps its data and logs"),
        inbox_port: int = typer.Option(8099, help="port of the demo inbox receiving webhook pushes (0: off)"),
        restart: bool = typer.Option(True, help="restart a service that exits unexpectedly"),
        tracing: bool = typer.Option(False, "--tracing", help="also start Jaeger (built by `make up TRACING=1`) "
                                     "and send the services' spans to it"),
    ) -> None:
        """Start the embedded stack and the five services; Ctrl-C stops everything."""
        from agentbus.config import ConfigError, load_config

        cfg_path = config or default_config()
        try:
            cfg = load_config(cfg_path)
        except ConfigError as err:
            typer.echo(str(err), err=True)
            raise typer.Exit(2) from None
        if tracing:
            from agentbus.stack.stack import find_jaeger

            try:
                find_jaeger()
            except RuntimeError as err:
                typer.echo(str(err), err=True)
                raise typer.Exit(2) from None
        asyncio.run(_up(cfg_path, cfg, home, inbox_port, restart, tracing))


async def _up(cfg_path: Path, cfg: PlatformConfig, home: Path, inbox_port: int, restart: bool, tracing: bool) -> None:
    from agentbus.http import server
    from agentbus.stack.inbox import inbox_app
    from agentbus.stack.stack import Stack

    stack = Stack(home=home, config_file=cfg_path, tracing=tracing)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    inbox_task = None
    if inbox_port:
        srv = server(inbox_app(cfg, printer=lambda s: print(f"{'inbox':>9} | {s}", flush=True)),
                     "127.0.0.1", inbox_port)
        inbox_task = asyncio.create_task(srv.serve())
    print(f"agentbus: starting the embedded stack in {home}/ with {cfg_path}", flush=True)
    try:
        starting = asyncio.create_task(stack.start())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            starting.cancel()
            return
        elapsed = starting.result()
        _banner(stack, elapsed, inbox_port)
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass
            if restart:
                for name, proc in list(stack.procs.items()):
                    if not proc.alive and not stop.is_set():
                        code = proc.process.returncode if proc.process is not None else None
                        print(f"agentbus: {name} exited with code {code}; restarting",
                              flush=True)
                        await asyncio.sleep(1)
                        try:
                            await stack.start_service(name)
                        except (RuntimeError, TimeoutError) as err:
                            print(f"agentbus: {name} did not come back: {err}", flush=True)
    finally:
        print("agentbus: stopping", flush=True)
        await stack.stop()
        if inbox_task is not None:
            srv.should_exit = True
            await asyncio.wait({inbox_task}, timeout=5)
        print("agentbus: stopped", flush=True)


def _banner(stack: Stack, elapsed: float, inbox_port: int) -> None:
    ingress = stack.ingress_url()
    lines = [
        "",
        f"agentbus is ready in {elapsed:.1f}s",
        f"  ingress:  {ingress}   (webhooks: {ingress}/v1/webhooks/<channel>)",
        "  services: " + ", ".join(f"{n} :{p}" for n, p in stack.ports.services.items()),
    ]
    if inbox_port:
        lines.append(f"  inbox:    http://127.0.0.1:{inbox_port}/replies   (pushes of the webhook channel land here)")
    if stack.tracing:
        lines.append(f"  traces:   http://127.0.0.1:{stack.ports.tracing}   "
                     f"(Jaeger UI; OTLP received on :{stack.ports.otlp})")
    lines += [
        "",
        "Send a first message (signed for you) and wait for the answer:",
        "  .venv/bin/agentbus send 'Hello, who are you?'",
        "Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)
