"""``agentbus knowledge add|list|remove``: the tenant's knowledge base from the command line.

``add`` reads and chunks each file here (Markdown, plain text, PDF) with the operator API's own checks, and
publishes its ``knowledge.requested`` commands with an audit event (actor ``cli``), acks=all; memory embeds and
stores the chunks. A file that cannot be loaded is refused (exit code 2) and nothing of it is published; the
tenant is checked against the running configuration (or the file) when one can be read. ``list`` reads
memory's admin endpoint ``/v1/knowledge``; ``remove`` publishes the removal of a document.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import typer

from agentbus.settings import Settings

knowledge_app = typer.Typer(no_args_is_help=True, help="Load, list and remove documents of a tenant's knowledge "
                            "base (recalled for every user of the tenant).")
TENANT = typer.Option(..., "--tenant", help="the tenant whose knowledge base it is")


def refuse(message: str) -> typer.Exit:
    typer.echo(f"refused: {message}", err=True)
    return typer.Exit(2)


def check_tenant(tenant: str) -> None:
    from agentbus.cli.configcmd import known_config
    from agentbus.cli.stackcmds import default_config

    known = known_config(default_config())
    if known is None:
        typer.echo("note: no configuration here, the tenant is not checked", err=True)
        return
    cfg, where = known
    if not any(t.id == tenant for t in cfg.tenants):
        raise refuse(f"tenant: unknown tenant {tenant!r} in {where}")


def publish(events: list[Any], tenant: str, action: str, target: str, detail: str) -> None:
    from agentbus.bus import Producer
    from agentbus.cli.tokens import api_module

    audit = api_module("audit").audit_event(actor="cli", actor_name=None, tenant=tenant, action=action,
                                            target=target, outcome="ok", detail=detail[:300], source="cli")

    async def send() -> None:
        producer = Producer(Settings(), "cli")  # acks=all
        await producer.start()
        try:
            await producer.publish([*events, audit])
        finally:
            await producer.stop()

    try:
        asyncio.run(send())
    except Exception as exc:  # the broker is away: say so, and fail (nothing was acknowledged)
        typer.echo(f"could not publish the command: {type(exc).__name__}: {exc}"[:400], err=True)
        raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    app.add_typer(knowledge_app, name="knowledge")

    @knowledge_app.command("add")
    def add(
        files: list[Path] = typer.Argument(..., help="Markdown (.md), plain text (.txt) or PDF (.pdf) files"),
        tenant: str = TENANT,
        title: str = typer.Option(None, "--title", help="the title (one file only; default: its first heading, "
                                  "its PDF title, or its file name)"),
    ) -> None:
        """Load documents into the tenant's knowledge base (each file one document)."""
        from agentbus.documents import DocumentError, read_document
        from agentbus.knowledge import MAX_CHUNKS, MAX_DOCUMENT_BYTES, add_commands

        if title is not None and len(files) != 1:
            raise refuse("--title names the title of one file only")
        docs = []
        for path in files:  # every file read first: one bad file publishes nothing
            try:
                if path.stat().st_size > MAX_DOCUMENT_BYTES:
                    raise refuse(f"{path}: larger than {MAX_DOCUMENT_BYTES} bytes")
                doc = read_document(path.read_bytes(), path.name, None, title)
            except OSError as exc:
                raise refuse(f"{path}: {exc.strerror or exc}") from None
            except DocumentError as why:
                raise refuse(f"{path}: {why}") from None
            if len(doc.chunks) > MAX_CHUNKS:
                raise refuse(f"{path}: {len(doc.chunks)} chunks, more than {MAX_CHUNKS}: split it")
            docs.append((path, doc))
        check_tenant(tenant)
        for path, doc in docs:
            events = add_commands(tenant, doc, "cli", source="cli", name=path.name)
            document = events[0].data.document
            publish(events, tenant, "knowledge.add", str(document), f"{doc.title} ({len(doc.chunks)} chunks)")
            typer.echo(f"{path.name}: document {document} {doc.title!r}, {len(doc.chunks)} chunks in "
                       f"{len(events)} part(s): requested")

    @knowledge_app.command("list")
    def list_(
        tenant: str = TENANT,
        removed: bool = typer.Option(False, "--removed", help="list removed documents too"),
        memory_url: str = typer.Option(None, "--memory-url",
                                       help="memory's admin URL (default: http://127.0.0.1:<its port>)"),
        as_json: bool = typer.Option(False, "--json", help="one JSON document instead of a table"),
    ) -> None:
        """List the tenant's documents (memory's /v1/knowledge), newest first."""
        import httpx

        url = (memory_url or f"http://127.0.0.1:{Settings().port_for('memory')}").rstrip("/")
        try:
            resp = httpx.get(f"{url}/v1/knowledge", params={"tenant": tenant, "removed": str(removed).lower()},
                             timeout=15)
        except httpx.HTTPError as exc:
            typer.echo(f"could not reach memory at {url}: {type(exc).__name__}: {exc}", err=True)
            raise typer.Exit(1) from None
        if resp.status_code >= 400:
            raise refuse(resp.json().get("error", resp.text) if "json" in resp.headers.get("content-type", "")
                         else f"{resp.status_code} {resp.text[:200]}")
        docs = resp.json()["items"]
        if as_json:
            typer.echo(json.dumps(docs, ensure_ascii=False, indent=2))
            return
        _table(docs)

    @knowledge_app.command("remove")
    def remove(
        tenant: str = TENANT,
        document: str = typer.Option(..., "--id", help="the document's id, as list shows it"),
    ) -> None:
        """Remove a document: memory deletes every chunk of it."""
        from agentbus.knowledge import remove_command

        try:
            document_id = uuid.UUID(document)
        except ValueError:
            raise refuse(f"--id: not a document id: {document[:80]!r}") from None
        check_tenant(tenant)
        event = remove_command(tenant, document_id, "cli", source="cli")
        publish([event], tenant, "knowledge.remove", str(document_id), "")
        typer.echo(f"removal of document {document_id}: requested (event {event.id})")


def _table(docs: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(docs)} document(s)")
    for col in ("id", "title", "file", "chunks", "loaded", "by", "removed"):
        table.add_column(col)
    for d in docs:
        loaded = f"{d['chunks']}" if d["parts_loaded"] >= d["parts"] else f"{d['chunks']} (loading)"
        table.add_row(d["id"], d["title"], d.get("source") or "-", loaded, d.get("loaded_at") or "-",
                      d.get("requested_by") or "-", d.get("removed_at") or "-")
    Console().print(table)
