"""``agentbus replay``: re-run selected events through part of the pipeline as a shadow run.

Replayed events keep their ids and carry the run in the envelope (and a ``replay`` header), so each
replayed reply can be put beside its live original. Egress records replayed replies as suppressed and
never pushes them; memory and the ledgers are not written; the LLM is called again only when asked.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime
from typing import Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from agentbus.events import Event, Replay
from agentbus.replayruns import ENTRY
from agentbus.settings import Settings


def register(app: typer.Typer) -> None:
    @app.command()
    def replay(
        stage: str = typer.Option("context", "--from", help="where to re-enter: message (memory onwards), "
                                  "job, or context (reasoner onwards)"),
        since: str = typer.Option(None, help="ISO time or a duration ago (15m, 2h, 7d); on the event's own time"),
        until: str = typer.Option(None, help="ISO time or a duration ago"),
        tenant: str = typer.Option(None),
        conversation: str = typer.Option(None),
        correlation: str = typer.Option(None, help="one message's correlation id"),
        rerun_llm: bool = typer.Option(False, "--rerun-llm", help="call the LLM again (default: reuse the ledger)"),
        model: str = typer.Option(None, help="with --rerun-llm: use this model (a name from agentbus.yaml, or echo)"),
        system_prompt: str = typer.Option(None, help="with --rerun-llm: use this system prompt instead"),
        rerun_tools: bool = typer.Option(False, "--rerun-tools", help="with --rerun-llm: run again the tools "
                                         "without side effects that have no recorded result (tools with side "
                                         "effects never run in a replay)"),
        run_id: str = typer.Option(None, help="name of the run (default: a new one)"),
        limit: int = typer.Option(1000, help="replay at most this many events"),
        timeout: float = typer.Option(120.0, help="seconds to wait for the replayed replies"),
        dry_run: bool = typer.Option(False, "--dry-run", help="only list what would be replayed"),
        as_json: bool = typer.Option(False, "--json", help="the report as JSON"),
    ) -> None:
        """Replay events in a shadow run and report the original reply beside the replayed one."""
        from agentbus.cli.observe import parse_when

        if stage not in ENTRY:
            raise typer.BadParameter(f"--from must be one of {', '.join(ENTRY)}")
        if (model or system_prompt or rerun_tools) and not rerun_llm:
            raise typer.BadParameter("--model, --system-prompt and --rerun-tools need --rerun-llm")
        run = Replay(run=run_id or f"replay-{uuid.uuid4().hex[:8]}", rerun_llm=rerun_llm, model=model,
                     system_prompt=system_prompt, rerun_tools=rerun_tools)
        code = asyncio.run(_replay(Settings(), ENTRY[stage], run, parse_when(since), parse_when(until), tenant,
                                   conversation, correlation, limit, timeout, dry_run, as_json))
        raise typer.Exit(code)


async def _select(s: Settings, entry_type: str, keep: Any, limit: int,
                  keyring: Any) -> tuple[list[Event], bool, int]:
    """The selection through the log index ingress keeps (when a tenant is given and the database answers),
    else by reading the topic."""
    from agentbus.logindex import tool_log_index
    from agentbus.replayruns import select_entries

    if not keep.tenant:  # the index is searched per tenant
        return await select_entries(s, entry_type, keep, limit, keyring)
    async with tool_log_index(s) as index:
        return await select_entries(s, entry_type, keep, limit, keyring, index)


async def _replay(s: Settings, entry_type: str, run: Replay, since: datetime | None, until: datetime | None,
                  tenant: str | None, conversation: str | None, correlation: str | None, limit: int, timeout: float,
                  dry_run: bool, as_json: bool) -> int:
    """A replay opens the people's text of the events it re-runs (a forgotten person's reads [forgotten]) and
    seals it again in their copies, so it needs the key store."""
    from agentbus.sealing.keystore import optional_keyring

    async with optional_keyring(s) as keyring:
        if keyring is None:
            print("a replay needs the key store (AGENTBUS_DATABASE_URL) to open and seal the people's text")
            return 2
        return await _replay_with(keyring, s, entry_type, run, since, until, tenant, conversation, correlation,
                                  limit, timeout, dry_run, as_json)


async def _replay_with(keyring: Any, s: Settings, entry_type: str, run: Replay, since: datetime | None,
                       until: datetime | None, tenant: str | None, conversation: str | None, correlation: str | None,
                       limit: int, timeout: float, dry_run: bool, as_json: bool) -> int:
    from agentbus.bus import Producer
    from agentbus.eventlog import Filter, end_offsets, follow
    from agentbus.replayruns import (
        Results,
        read_originals,
        report_rows,
        result_topics,
        summary,
        wanted_of,
    )

    console = Console(highlight=False, stderr=as_json)
    topics = result_topics(s.topic_prefix)
    keep = Filter(tenant=tenant, conversation=conversation, correlation=correlation, since=since, until=until,
                  include_replays=False)
    selected, _, expired = await _select(s, entry_type, keep, limit, keyring)
    if expired:
        console.print(f"{expired} matching event(s) are older than the log's retention: the log no longer holds "
                      "them, they are not replayed")
    if not selected:
        console.print("nothing to replay: no live events match" + (" on the log" if expired else ""))
        return 1
    originals = await read_originals(s, keyring)
    if dry_run:
        for e in selected:
            console.print(f"would replay {e.TYPE} {e.id} {e.conversation} at {e.occurred_at:%Y-%m-%d %H:%M:%S}")
        return 0
    starts = await end_offsets(s, topics)
    producer = Producer(s, "replay", keyring)
    await producer.start()
    entries = [(e.id, e.TYPE) for e in selected]
    results = Results(wanted_of(entries))
    t0 = time.monotonic()
    try:
        with Progress(console=console, transient=as_json) as progress:
            sent = progress.add_task(f"replaying ({run.run})", total=len(selected))
            batch = 100
            for i in range(0, len(selected), batch):
                chunk = [e.model_copy(update={"replay": run}) for e in selected[i:i + batch]]
                await producer.publish(chunk)
                progress.update(sent, advance=len(chunk))
            done = progress.add_task("waiting for replayed replies", total=len(selected))
            stop = asyncio.Event()

            async def collect() -> None:
                async for lg in follow(s, topics, lambda e: e.replay is not None and e.replay.run == run.run,
                                       start=starts, stop=stop, keyring=keyring):
                    results.add(lg.event)
                    progress.update(done, completed=len(results.finished))
                    if len(results.finished) >= len(results.wanted):
                        return

            try:
                await asyncio.wait_for(collect(), timeout)
            except TimeoutError:
                pass
            stop.set()
    finally:
        await producer.stop()
    rows = report_rows(entries, {e.id: e.conversation for e in selected}, originals, results)
    report: dict[str, Any] = {"run": run.run, "rerun_llm": run.rerun_llm, "model": run.model, **summary(rows, results),
                              "seconds": round(time.monotonic() - t0, 2), "messages": rows}
    if as_json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        table = Table(title=f"replay {run.run}" + (f" (LLM re-run{', model ' + run.model if run.model else ''})"
                                                   if run.rerun_llm else " (ledger reused)"))
        for col in ("conversation", "original", "replayed", "changed"):
            table.add_column(col, overflow="fold")
        for r in rows:
            table.add_row(r["conversation"],
                          _with_tools(f"[{r['original_model']}] {r['original'] or '—'}"[:300], r["original_tools"]),
                          _with_tools(f"[{r['replayed_model']}] {r['replayed'] or r['error'] or '—'}"[:300],
                                      r["replayed_tools"]),
                          {True: "yes", False: "no", None: "?"}[r["changed"]])
        console.print(table)
        console.print(f"{report['replayed']}/{report['selected']} replayed, {report['changed']} changed, "
                      f"{report['failed']} failed, {report['pushed_to_channels']} pushed to a channel "
                      f"(replayed replies are never pushed), {report['seconds']} s")
    complete = len(results.replayed) + len(results.failed) == len(results.wanted)
    return 0 if complete and not report["pushed_to_channels"] else 1


def _with_tools(text: str, tools: list[str]) -> str:
    return text if not tools else text + "\n" + "\n".join(f"  ⚙ {t}" for t in tools)
