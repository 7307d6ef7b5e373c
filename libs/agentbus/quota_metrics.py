"""Metrics of the per-tenant quotas (ingress counts refused messages, the reasoner the day's LLM tokens).

Kept apart from ``agentbus.metrics`` only so the quota modules of both services can share the names."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

QUOTA_REFUSED = Counter(
    "agentbus_quota_refused_total",
    "Work refused by a tenant quota: messages over messages_per_minute (ingress), answers given the budget text "
    "over llm_tokens_per_day (reasoner)",
    ["tenant", "quota"],
)
QUOTA_LIMIT = Gauge("agentbus_quota_limit", "A tenant's configured quota", ["tenant", "quota"])
QUOTA_TOKENS_USED = Gauge(
    "agentbus_quota_llm_tokens_used", "LLM tokens (input + output) a tenant used this UTC day, as last counted",
    ["tenant"],
)
MESSAGES = "messages_per_minute"
TOKENS = "llm_tokens_per_day"
