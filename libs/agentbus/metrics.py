"""Prometheus metrics shared by every service (each service process exposes them on /metrics)."""

from __future__ import annotations

from functools import cache
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter(
    "agentbus_events_consumed_total", "Events consumed, by type and outcome", ["type", "outcome"]
)
EVENTS_PRODUCED = Counter("agentbus_events_produced_total", "Events produced, by type", ["type"])
HANDLER_SECONDS = Histogram(
    "agentbus_handler_seconds",
    "Handler latency, by event type",
    ["type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
IN_FLIGHT = Gauge("agentbus_in_flight_events", "Events being processed right now")
BUFFERED = Gauge("agentbus_buffered_events", "Events fetched and not yet finished")
CONSUMER_LAG = Gauge("agentbus_consumer_lag", "High watermark minus committed offset", ["topic", "partition"])
RETRIES = Counter("agentbus_handler_retries_total", "Handler retries, by event type and kind", ["type", "kind"])
DEAD_LETTERED = Counter("agentbus_dead_lettered_total", "Events sent to the dead-letter topic", ["type"])
HTTP_REQUESTS = Counter(
    "agentbus_http_requests_total", "HTTP requests handled, by route and status", ["route", "status"]
)
LLM_SECONDS = Histogram(
    "agentbus_llm_seconds",
    "LLM call latency, by model and outcome",
    ["model", "outcome"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
LLM_TOKENS = Counter("agentbus_llm_tokens_total", "LLM tokens, by model and direction", ["model", "direction"])
MODEL_UP = Gauge(
    "agentbus_model_up",
    "1 while the model answered its last probe or call, 0 while it is down (per reasoner replica)",
    ["model"],
)
MODEL_PROBE_SECONDS = Histogram(
    "agentbus_model_probe_seconds",
    "Model health probe latency, by model and outcome",
    ["model", "outcome"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
DELIVERIES = Counter(
    "agentbus_deliveries_total", "Pushes to chat platforms, by channel and outcome", ["channel", "outcome"]
)
CONNECTION_UP = Gauge(
    "agentbus_channel_connection_up",
    "Long connections to platforms: 1 while this replica's connection of the channel is up (summed over the "
    "replicas, 1 is healthy and 0 is a channel nobody receives)",
    ["channel"],
)
CONNECTION_HELD = Gauge(
    "agentbus_channel_connection_held", "1 while this replica holds the channel's long-connection lease", ["channel"]
)
RECONNECTS = Counter("agentbus_channel_reconnects_total", "Long-connection sessions that ended", ["channel"])
STREAM_EVENTS = Counter(
    "agentbus_channel_stream_events_total", "Platform events received over long connections, by outcome",
    ["channel", "outcome"],
)
PII_MASKED = Counter(
    "agentbus_pii_masked_total",
    "Personal data values replaced by placeholders before text left for an external service, by kind (email, "
    "phone, id_card, bank_card) and target (model: one inference's requests, each value once; embeddings: a "
    "text embedded)",
    ["kind", "target"],
)
LOG_INDEXED = Counter("agentbus_log_indexed_total", "Records of the event log written to its index (and archive)")
DLQ_SIZE = Gauge("agentbus_dlq_size", "Records in the dead-letter topic (all time; redriven ones included)")


@cache
def child(metric: Any, *values: str) -> Any:
    """``metric.labels(*values)``, looked up once: for the per-event and per-call metrics, whose label values
    come from small sets (event types, outcomes, configured models and channel types, HTTP statuses);
    ``labels`` validates and locks on every call."""
    return metric.labels(*values)
CONFIG_VERSION = Gauge("agentbus_config_version", "The version of the platform's configuration this process runs")
CONFIG_REFUSED = Counter(
    "agentbus_config_refused_total",
    "Configuration versions this process could not apply (it keeps the one it runs), or failed to rebuild for",
)
RECALL_SKIPPED = Counter(
    "agentbus_recall_skipped_total",
    "Turns answered without semantic recall, by reason (embeddings_unavailable: the server is away or failing; "
    "embeddings_rejected: it refused the text)",
    ["reason"],
)
VECTORS_DEFERRED = Counter(
    "agentbus_vectors_deferred_total",
    "Turns whose vector was put off while the embeddings server was away (deferred), made later (indexed), or "
    "refused by the server when it was back (refused)",
    ["outcome"],
)
