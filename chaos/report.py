"""Counting what happened: from the load's own records, the fakes' raw request logs and the dead letters.

- accepted: messages ingress answered 2xx (after retries with the same webhook-id);
- delivered: accepted messages with at least one push answered 2xx by the channel (in_reply_to = webhook-id);
- lost: accepted, but neither delivered nor dead-lettered;
- duplicated pushes: raw 2xx-answered push requests beyond the first per webhook-id (a receiver that
  de-duplicates by webhook-id, as Standard Webhooks asks, would still show one message);
- duplicated LLM calls: completions served beyond the first for the same input message;
- tool effects: a third of the messages are answered through a side-effecting tool; a repeated effect is one
  message acted on under two idempotency keys (a decision made twice), a repeated request one key sent again
  (the reasoner killed between the call and its record; the API applies it once);
- out of order: replies that arrived after a reply to a later message of the same conversation;
- recovery: from a fault's end to the first reply pushed for a message sent (and accepted) after that end.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chaos.fakes import ChaosEffects, ChaosLLM, ChaosSink, uses_tool
from chaos.faults import Fault
from chaos.load import Message
from chaos.longconn import LcResult


@dataclass
class FaultResult:
    name: str
    started_s: float | None
    duration_s: float | None
    recovery_s: float | None
    error: str | None = None
    note: str | None = None


@dataclass
class Result:
    messages: int
    conversations: int
    accepted: int
    not_accepted: int
    rejected: int
    ingress_retries: int
    delivered: int
    lost: int
    dead_lettered: int
    dead_letter_records: int
    duplicated_pushes: int
    replies_pushed_more_than_once: int
    duplicated_replies_in_chat: int
    throttled_pushes: int
    unexpected_pushes: int
    wrong_replies: int
    duplicated_llm_calls: int
    llm_requests_failed: int
    tool_messages: int  # accepted messages answered through the side-effecting tool
    repeated_tool_effects: int  # messages acted on under more than one idempotency key (a decision run twice)
    repeated_tool_requests: int  # requests beyond the first with a key already seen (the API applies them once)
    duplicated_tool_step_llm_calls: int  # model calls that asked for the tool, beyond the first per message
    out_of_order: int
    delivery_failed: int
    max_recovery_s: float | None
    faults: list[FaultResult]
    load_s: float
    drain_s: float
    total_s: float
    lost_examples: list[dict[str, Any]] = field(default_factory=list)
    duplicate_examples: list[dict[str, Any]] = field(default_factory=list)
    out_of_order_examples: list[dict[str, Any]] = field(default_factory=list)
    dead_letter_examples: list[dict[str, Any]] = field(default_factory=list)
    duplicated_llm_examples: list[dict[str, Any]] = field(default_factory=list)
    handler_errors: dict[str, int] = field(default_factory=dict)  # non-transient handler failures, from the logs
    long_connection: LcResult | None = None  # the Telegram channel in mode: stream, counted from its raw log

    @property
    def ok(self) -> bool:
        """Lost, duplicated (as the chat sees it) and out-of-order must be zero, and every fault must have been
        injected (a run without its faults proves nothing). A push repeated with the same webhook-id after
        egress was SIGKILLed between the platform's answer and the ledger write is shown as a raw repeat: the
        receiver de-duplicates it by webhook-id, as Standard Webhooks asks it to."""
        lc = self.long_connection
        lc_ok = lc is None or (lc.lost == 0 and lc.duplicated == 0 and lc.out_of_order == 0 and lc.wrong == 0)
        return (self.lost == 0 and self.duplicated_replies_in_chat == 0 and self.out_of_order == 0
                and self.repeated_tool_effects == 0 and lc_ok and all(f.error is None for f in self.faults))

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def first_deliveries(sink: ChaosSink) -> dict[str, float]:
    """in_reply_to → arrival time of the first push answered 2xx."""
    out: dict[str, float] = {}
    for p in sink.pushes:
        if p.status < 300 and p.in_reply_to is not None and p.in_reply_to not in out:
            out[p.in_reply_to] = p.at
    return out


def nearest_fault(at: float, faults: list[Fault]) -> str | None:
    """The last fault that started before ``at`` (what a repeat most likely followed)."""
    before = [f for f in faults if f.started is not None and f.started <= at]
    return before[-1].name if before else None


def recovery_after(end: float, messages: list[Message], delivered_at: dict[str, float]) -> float | None:
    """Time from ``end`` to the first reply to a message sent after it (by the request that was accepted:
    a 2xx read just after a SIGKILL may still come from the killed process)."""
    times = [delivered_at[m.webhook_id] for m in messages
             if m.sent_at is not None and m.sent_at >= end and m.webhook_id in delivered_at]
    return (min(times) - end) if times else None


def handler_errors(log_dir: Path) -> dict[str, int]:
    """Non-transient handler failures (retried as the event's fault, then dead-lettered) by service and error
    type, read from the services' JSON logs: under injected infrastructure faults there should be none."""
    out: dict[str, int] = defaultdict(int)
    for path in sorted(log_dir.glob("*.log")):
        with path.open("rb") as f:
            for line in f:
                if b'"handler_retry"' not in line and b'"event_dead_lettered"' not in line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("event") == "handler_retry" and rec.get("kind") != "error":
                    continue
                kind = "dead-lettered" if rec.get("event") == "event_dead_lettered" else "retried"
                out[f"{path.stem}: {str(rec.get('error', '?')).split(':')[0]} ({kind})"] += 1
    return dict(out)


def compute(
    messages: list[Message], conversations: int, sink: ChaosSink, llm: ChaosLLM, dead_letters: list[Any],
    delivery_failed: int, faults: list[Fault], t0: float, load_s: float, drain_s: float, total_s: float,
    log_dir: Path | None = None, effects: ChaosEffects | None = None,
) -> Result:
    by_id = {m.webhook_id: m for m in messages}
    accepted = [m for m in messages if m.accepted_at is not None]
    delivered_at = first_deliveries(sink)

    ok_pushes: dict[str, int] = defaultdict(int)  # webhook-id (the reply id) → 2xx pushes
    reply_of: dict[str, str | None] = {}
    wrong = 0
    unexpected = 0
    for p in sink.pushes:
        if p.status >= 300:
            continue
        ok_pushes[p.webhook_id] += 1
        reply_of[p.webhook_id] = p.in_reply_to
        m = by_id.get(p.in_reply_to or "")
        if m is None:
            unexpected += 1
        elif ok_pushes[p.webhook_id] == 1 and p.text != f"answer: {m.text}":
            wrong += 1
    dup_pushes = sum(n - 1 for n in ok_pushes.values() if n > 1)
    # what a chat shows: distinct replies (webhook-ids) answering the same inbound message, beyond the first
    ids_per_message: dict[str, set[str]] = defaultdict(set)
    for p in sink.pushes:
        if p.status < 300 and p.in_reply_to:
            ids_per_message[p.in_reply_to].add(p.webhook_id)
    dup_in_chat = sum(len(ids) - 1 for ids in ids_per_message.values() if len(ids) > 1)
    push_times: dict[str, list[float]] = defaultdict(list)
    for p in sink.pushes:
        if p.status < 300 and ok_pushes[p.webhook_id] > 1:
            push_times[p.webhook_id].append(p.at)
    dup_examples = [{"reply_id": k, "in_reply_to": reply_of[k], "pushes": len(ts),
                     "at_s": [round(t - t0, 2) for t in ts], "during": nearest_fault(ts[-1], faults)}
                    for k, ts in push_times.items()]

    dlq_correlations = {str(d.correlation_id) for d in dead_letters}
    dead = [m for m in accepted if m.event_id in dlq_correlations]
    lost = [m for m in accepted if m.webhook_id not in delivered_at and m.event_id not in dlq_correlations]

    texts = {m.text for m in messages}
    dup_llm = sum(len(ts) - 1 for t, ts in llm.served.items() if t in texts and len(ts) > 1)
    dup_llm_examples = [{"input": t, "completions": len(ts), "at_s": [round(x - t0, 2) for x in ts],
                         "during": nearest_fault(ts[-1], faults)}
                        for t, ts in llm.served.items() if t in texts and len(ts) > 1]

    tool_texts = {m.text for m in accepted if uses_tool(m.text, llm.tools_every)} if effects is not None else set()
    effect_keys = effects.requests if effects is not None else {}
    repeated_effects = sum(1 for t in tool_texts if len(set(effect_keys.get(t, ()))) > 1)
    repeated_requests = sum(len(ks) - len(set(ks)) for t, ks in effect_keys.items() if t in tool_texts)
    dup_tool_llm = sum(len(ts) - 1 for t, ts in llm.tool_steps.items() if t in tool_texts and len(ts) > 1)

    ooo = 0
    ooo_examples: list[dict[str, Any]] = []
    convs: dict[str, list[Message]] = defaultdict(list)
    for m in accepted:
        if m.webhook_id in delivered_at:
            convs[m.conversation].append(m)
    for conv, ms in convs.items():
        ms.sort(key=lambda m: delivered_at[m.webhook_id])
        highest = -1
        for m in ms:
            if m.seq < highest:
                ooo += 1
                ooo_examples.append({"conversation": conv, "seq": m.seq, "after_seq": highest})
            highest = max(highest, m.seq)

    fault_results = []
    for f in faults:
        rec = recovery_after(f.ended, messages, delivered_at) if f.ended is not None else None
        fault_results.append(FaultResult(
            f.name, round(f.started - t0, 1) if f.started is not None else None,
            round(f.ended - f.started, 1) if f.started is not None and f.ended is not None else None,
            round(rec, 2) if rec is not None else None, f.error, f.note,
        ))
    recoveries = [f.recovery_s for f in fault_results if f.recovery_s is not None]

    return Result(
        messages=len(messages),
        conversations=conversations,
        accepted=len(accepted),
        not_accepted=sum(1 for m in messages if m.accepted_at is None and m.rejected is None),
        rejected=sum(1 for m in messages if m.rejected is not None),
        ingress_retries=sum(m.attempts - 1 for m in messages if m.attempts > 1),
        delivered=sum(1 for m in accepted if m.webhook_id in delivered_at),
        lost=len(lost),
        dead_lettered=len(dead),
        dead_letter_records=len(dead_letters),
        duplicated_pushes=dup_pushes,
        duplicated_replies_in_chat=dup_in_chat,
        replies_pushed_more_than_once=len(dup_examples),
        throttled_pushes=sum(1 for p in sink.pushes if p.status == 429),
        unexpected_pushes=unexpected,
        wrong_replies=wrong,
        duplicated_llm_calls=dup_llm,
        llm_requests_failed=llm.failed,
        tool_messages=len(tool_texts),
        repeated_tool_effects=repeated_effects,
        repeated_tool_requests=repeated_requests,
        duplicated_tool_step_llm_calls=dup_tool_llm,
        out_of_order=ooo,
        delivery_failed=delivery_failed,
        max_recovery_s=max(recoveries) if recoveries else None,
        faults=fault_results,
        load_s=round(load_s, 1),
        drain_s=round(drain_s, 1),
        total_s=round(total_s, 1),
        lost_examples=[{"conversation": m.conversation, "seq": m.seq, "webhook_id": m.webhook_id,
                        "event_id": m.event_id} for m in lost[:20]],
        duplicate_examples=dup_examples[:20],
        out_of_order_examples=ooo_examples[:20],
        duplicated_llm_examples=dup_llm_examples[:20],
        handler_errors=handler_errors(log_dir) if log_dir is not None else {},
        dead_letter_examples=[{"id": str(d.id), "service": d.data.service, "type": d.data.original_type,
                               "error": d.data.error[:300]} for d in dead_letters[:20]],
    )


def render(r: Result) -> None:
    from rich.console import Console
    from rich.table import Table

    def mark(bad: bool) -> str:
        return "[red]FAIL[/red]" if bad else "[green]ok[/green]"

    t = Table(title=f"chaos run: {r.messages} messages over {r.conversations} conversations "
                    f"({r.total_s:.0f}s: load {r.load_s:.0f}s, drain {r.drain_s:.0f}s)")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_column("")
    rows: list[tuple[str, Any, str]] = [
        ("messages accepted (2xx from ingress)", r.accepted, ""),
        ("  not accepted (gave up) / rejected (4xx)", f"{r.not_accepted} / {r.rejected}", ""),
        ("  ingress requests retried (same webhook-id)", r.ingress_retries, ""),
        ("replies delivered", r.delivered, ""),
        ("lost (accepted, neither delivered nor dead-lettered)", r.lost, mark(r.lost > 0)),
        ("duplicated replies in the chat (a second reply to one message)", r.duplicated_replies_in_chat,
         mark(r.duplicated_replies_in_chat > 0)),
        ("  raw repeated pushes, same webhook-id (receiver de-duplicates)", r.duplicated_pushes, ""),
        ("  replies pushed more than once (distinct webhook-ids)", r.replies_pushed_more_than_once, ""),
        ("out-of-order replies within a conversation", r.out_of_order, mark(r.out_of_order > 0)),
        ("duplicated LLM calls (completions beyond the first per input)", r.duplicated_llm_calls, ""),
        ("messages answered through a side-effecting tool", r.tool_messages, ""),
        ("  repeated tool effects (one message acted on under two keys)", r.repeated_tool_effects,
         mark(r.repeated_tool_effects > 0)),
        ("  repeated tool requests, same Idempotency-Key (the API applies once)", r.repeated_tool_requests, ""),
        ("  repeated model calls that asked for the tool", r.duplicated_tool_step_llm_calls, ""),
        ("dead-lettered (accepted messages) / dead-letter records", f"{r.dead_lettered} / {r.dead_letter_records}",
         ""),
        ("deliveries recorded as failed", r.delivery_failed, ""),
        ("pushes answered 429 (injected)", r.throttled_pushes, ""),
        ("LLM requests failed or timed out (injected)", r.llm_requests_failed, ""),
        ("wrong reply text / pushes for unknown messages", f"{r.wrong_replies} / {r.unexpected_pushes}", ""),
        ("max time to recover after a fault", f"{r.max_recovery_s:.1f}s" if r.max_recovery_s is not None else "n/a",
         ""),
    ]
    lc = r.long_connection
    if lc is not None:
        rows += [
            ("long connection (Telegram getUpdates): messages / confirmed by offset", f"{lc.messages} / {lc.confirmed}",
             ""),
            ("  answered / lost (unanswered)", f"{lc.answered} / {lc.lost}", mark(lc.lost > 0)),
            ("  duplicated answers (sendMessage beyond the first)", lc.duplicated, mark(lc.duplicated > 0)),
            ("  out of order / wrong text", f"{lc.out_of_order} / {lc.wrong}", mark(lc.out_of_order + lc.wrong > 0)),
        ]
    for name, value, m in rows:
        t.add_row(name, str(value), m)
    console = Console(width=120)
    console.print(t)
    ft = Table(title="faults")
    for col in ("fault", "at", "lasted", "recovered after", "what it did"):
        ft.add_column(col, justify="left" if col in ("fault", "what it did") else "right")
    for f in r.faults:
        ft.add_row(f.name + (f" [red]({f.error})[/red]" if f.error else ""),
                   f"{f.started_s:.0f}s" if f.started_s is not None else "-",
                   f"{f.duration_s:.1f}s" if f.duration_s is not None else "-",
                   f"{f.recovery_s:.1f}s" if f.recovery_s is not None else "n/a",
                   f.note or "")
    console.print(ft)
    repeats = [("duplicated pushes", r.duplicate_examples), ("duplicated LLM calls", r.duplicated_llm_examples)]
    for what, examples in repeats:
        if examples:
            by = Counter(str(x["during"]) for x in examples)
            console.print(f"{what}, by the fault they followed: " + ", ".join(f"{k}: {n}" for k, n in by.items()))
    if r.handler_errors:
        console.print("non-transient handler errors in the service logs: " +
                      ", ".join(f"{k} x{n}" for k, n in sorted(r.handler_errors.items())))
    console.print("[green]PASS[/green]: nothing lost, nothing pushed twice, nothing out of order" if r.ok else
                  "[red]FAIL[/red]: see lost / duplicated / out-of-order and the faults above (details in the JSON)")
