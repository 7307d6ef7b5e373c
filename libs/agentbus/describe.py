"""One-line, human-readable summaries of events (for tail and trace)."""

from __future__ import annotations

from agentbus.events import Event


def _short(text: str | None, n: int = 60) -> str:
    if not text:
        return ""
    t = " ".join(text.split())
    return t if len(t) <= n else t[: n - 1] + "…"


def summary(e: Event) -> str:
    d = e.data
    t = e.TYPE
    if t == "message.received":
        return f"{d.sender.id} in {d.chat.type} {d.chat.id!r}: {_short(d.text)}"
    if t == "job.triggered":
        return f"job {d.job_id} due {d.due_at:%Y-%m-%d %H:%M} → {d.channel}/{d.chat.id}: {_short(d.prompt)}"
    if t == "job.requested":
        return f"{d.action} job {d.job_id}"
    if t == "context.assembled":
        return f"agent {d.agent}: {len(d.history)} turn(s), {len(d.memories)} memory(ies)"
    if t == "inference.completed":
        tokens = f"{d.usage.input_tokens or 0}→{d.usage.output_tokens or 0} tokens"
        extra = " (from ledger)" if d.reused else ""
        if d.outcome != "ok":
            return f"FAILED {d.error}"
        return f"{d.model} via {d.provider}: {tokens}, {d.latency_ms:.0f} ms, finish {d.finish_reason}{extra}"
    if t == "reply.generated":
        return f"{d.model} → {d.channel}/{d.chat.id}: {_short(d.text)}"
    if t == "delivery.completed":
        extra = f" ({d.error})" if d.error else ""
        return f"{d.status} to {d.channel} after {d.attempts} attempt(s){extra}"
    if t == "dead.lettered":
        return f"{d.service} gave up on {d.original_type or 'record'} after {d.attempts}: {_short(d.error, 80)}"
    return ""
