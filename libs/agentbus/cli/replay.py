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

from agentbus.events import DeliveryCompleted, Event, InferenceCompleted, Replay, ReplyGenerated, ToolCalled
from agentbus.ids import reply_id, reply_id_of_context
from agentbus.settings import Settings

ENTRY = {"message": "message.received", "job": "job.triggered", "context": "context.assembled"}


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


async def _replay(s: Settings, entry_type: str, run: Replay, since: datetime | None, until: datetime | None,
                  tenant: str | None, conversation: str | None, correlation: str | None, limit: int, timeout: float,
                  dry_run: bool, as_json: bool) -> int:
    from agentbus.bus import Producer
    from agentbus.eventlog import Filter, end_offsets, read
    from agentbus.topics import topic_for, topics_of_type

    console = Console(highlight=False, stderr=as_json)
    entry_topic = topic_for(s.topic_prefix, entry_type)
    tool_topic = topic_for(s.topic_prefix, ToolCalled.TYPE)
    result_topics = [*topics_of_type(s.topic_prefix, "reply.generated"),
                     topic_for(s.topic_prefix, "delivery.completed"), tool_topic,
                     *topics_of_type(s.topic_prefix, "inference.completed")]
    selected = [lg.event for lg in await read(
        s, [entry_topic],
        Filter(tenant=tenant, conversation=conversation, correlation=correlation, since=since, until=until,
               include_replays=False),
    )][:limit]
    if not selected:
        console.print("nothing to replay: no live events match")
        return 1
    reply_topics = topics_of_type(s.topic_prefix, "reply.generated")
    originals = {lg.event.id: lg.event for lg in await read(s, reply_topics, lambda e: e.replay is None)}
    original_tools: dict[uuid.UUID, list[ToolCalled]] = {}
    for lg in await read(s, [tool_topic], lambda e: e.replay is None):
        _add_tool(original_tools, lg.event)
    if dry_run:
        for e in selected:
            console.print(f"would replay {e.TYPE} {e.id} {e.conversation} at {e.occurred_at:%Y-%m-%d %H:%M:%S}")
        return 0
    starts = await end_offsets(s, result_topics)
    producer = Producer(s, "replay")
    await producer.start()
    wanted = {reply_id(e.id, e.TYPE): e for e in selected}
    replayed: dict[uuid.UUID, Event] = {}
    failed: dict[uuid.UUID, str] = {}
    deliveries: dict[uuid.UUID, str] = {}
    replayed_tools: dict[uuid.UUID, list[ToolCalled]] = {}
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
            from agentbus.eventlog import follow

            stop = asyncio.Event()

            async def collect() -> None:
                async for lg in follow(s, result_topics, lambda e: e.replay is not None and e.replay.run == run.run,
                                       start=starts, stop=stop):
                    e = lg.event
                    if isinstance(e, ReplyGenerated) and e.id in wanted:
                        replayed[e.id] = e
                    elif isinstance(e, ToolCalled):
                        _add_tool(replayed_tools, e)
                    elif isinstance(e, DeliveryCompleted):
                        deliveries[e.data.reply_id] = e.data.status
                    elif (isinstance(e, InferenceCompleted) and e.data.outcome == "failed"
                          and e.causation_id is not None):
                        rid = reply_id_of_context(e.causation_id)
                        if rid in wanted:
                            failed[rid] = e.data.error or "failed"
                    finished = len(set(replayed) & set(deliveries) | set(failed))
                    progress.update(done, completed=finished)
                    if finished >= len(wanted):
                        return

            try:
                await asyncio.wait_for(collect(), timeout)
            except TimeoutError:
                pass
            stop.set()
    finally:
        await producer.stop()
    rows: list[dict[str, Any]] = []
    for rid, entry in wanted.items():
        orig = originals.get(rid)
        new = replayed.get(rid)
        rows.append({
            "entry_id": str(entry.id), "conversation": entry.conversation, "reply_id": str(rid),
            "original_model": orig.data.model if orig else None, "original": orig.data.text if orig else None,
            "replayed_model": new.data.model if new else None, "replayed": new.data.text if new else None,
            "changed": (orig.data.text != new.data.text) if orig and new else None,
            "delivery": deliveries.get(rid), "error": failed.get(rid),
            "original_tools": [_tool_line(t) for t in original_tools.get(rid, [])],
            "replayed_tools": [_tool_line(t) for t in replayed_tools.get(rid, [])],
        })
    pushed = [r for r in rows if r["delivery"] not in (None, "suppressed")]
    report = {"run": run.run, "rerun_llm": run.rerun_llm, "model": run.model, "selected": len(selected),
              "replayed": len(replayed), "failed": len(failed), "changed": sum(1 for r in rows if r["changed"]),
              "pushed_to_channels": len(pushed), "seconds": round(time.monotonic() - t0, 2), "messages": rows}
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
    complete = len(replayed) + len(failed) == len(wanted)
    return 0 if complete and not pushed else 1


def _add_tool(by_reply: dict[uuid.UUID, list[ToolCalled]], e: Event) -> None:
    if isinstance(e, ToolCalled) and e.causation_id is not None:
        by_reply.setdefault(reply_id_of_context(e.causation_id), []).append(e)


def _tool_line(t: ToolCalled) -> str:
    """One tool call of an answer: step, tool, arguments, outcome and the start of its result."""
    d = t.data
    args = json.dumps(d.arguments, ensure_ascii=False) if isinstance(d.arguments, dict) else d.arguments
    how = "reused" if d.reused else f"{d.latency_ms:.0f} ms"
    return f"{d.step}. {d.tool}({args[:80]}) → {d.outcome} ({how}): {' '.join(d.result.split())[:80]}"


def _with_tools(text: str, tools: list[str]) -> str:
    return text if not tools else text + "\n" + "\n".join(f"  ⚙ {t}" for t in tools)
