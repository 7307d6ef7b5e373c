"""One-line, human-readable summaries of events (for tail and trace)."""

from __future__ import annotations

from agentbus.events import (
    ContextAssembled,
    DeadLettered,
    DeliveryCompleted,
    Event,
    InferenceCompleted,
    JobRequested,
    JobTriggered,
    MessageReceived,
    ReplyGenerated,
    ToolCalled,
)


def _short(text: str | None, n: int = 60) -> str:
    if not text:
        return ""
    t = " ".join(text.split())
    return t if len(t) <= n else t[: n - 1] + "…"


def summary(e: Event) -> str:
    match e:
        case MessageReceived(data=d):
            return f"{d.sender.id} in {d.chat.type} {d.chat.id!r}: {_short(d.text)}"
        case JobTriggered(data=d):
            return f"job {d.job_id} due {d.due_at:%Y-%m-%d %H:%M} → {d.channel}/{d.chat.id}: {_short(d.prompt)}"
        case JobRequested(data=d):
            return f"{d.action} job {d.job_id}"
        case ContextAssembled(data=d):
            return f"agent {d.agent}: {len(d.history)} turn(s), {len(d.memories)} memory(ies)"
        case InferenceCompleted(data=d):
            if d.outcome != "ok":
                return f"FAILED {d.error}"
            tokens = f"{d.usage.input_tokens or 0}→{d.usage.output_tokens or 0} tokens"
            extra = " (from ledger)" if d.reused else ""
            return f"{d.model} via {d.provider}: {tokens}, {d.latency_ms:.0f} ms, finish {d.finish_reason}{extra}"
        case ReplyGenerated(data=d):
            return f"{d.model} → {d.channel}/{d.chat.id}: {_short(d.text)}"
        case ToolCalled(data=d):
            how = "reused" if d.reused else f"{d.latency_ms:.0f} ms"
            return f"step {d.step}: {d.tool} → {d.outcome} ({how}): {_short(d.result)}"
        case DeliveryCompleted(data=d):
            extra = f" ({d.error})" if d.error else ""
            return f"{d.status} to {d.channel} after {d.attempts} attempt(s){extra}"
        case DeadLettered(data=d):
            return f"{d.service} gave up on {d.original_type or 'record'} after {d.attempts}: {_short(d.error, 80)}"
    return ""
