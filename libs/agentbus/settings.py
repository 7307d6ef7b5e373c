"""Process settings from the environment (prefix ``AGENTBUS_``).

Settings say *where things are* (broker, database, vector store, endpoints, ports); the YAML file says
*what the platform does* (tenants, agents, channels, jobs). Every embedded part can be replaced by an
external endpoint here without touching the YAML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("ingress", "memory", "reasoner", "scheduler", "egress")
DEFAULT_PORTS = {"ingress": 8080, "memory": 8081, "reasoner": 8082, "scheduler": 8083, "egress": 8084}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTBUS_", env_nested_delimiter="__", extra="ignore")

    # where the YAML lives
    config_file: Path = Path("agentbus.yaml")

    # Kafka
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    kafka_idempotent_producer: bool = False
    kafka_compression: str | None = "lz4"
    topic_prefix: str = "agentbus"
    topic_partitions: int = 6
    topic_replication_factor: int = 1
    # topic config min.insync.replicas of the topics the platform creates (None: the broker's default); with
    # acks=all, how many replicas must have a write before it is acknowledged (2 with 3 replicas)
    topic_min_insync_replicas: int | None = Field(default=None, ge=1)
    create_topics: bool = True
    consumer_group_prefix: str = "agentbus"
    session_timeout_ms: int = 10000
    heartbeat_interval_ms: int = 3000

    # consumers: concurrency and failure handling
    max_in_flight: int = 256
    max_buffered: int = 10000
    handler_attempts: int = 5
    retry_initial_s: float = 0.2
    retry_max_s: float = 10.0
    retry_budget_per_minute: int = 600
    commit_interval_s: float = 0.2
    shutdown_grace_s: float = 20.0

    # PostgreSQL
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    db_pool_min: int = 1
    db_pool_max: int = 10
    # how long a process keeps a person's data key (or the news that it was deleted) before reading it again:
    # after a person is forgotten, another process may still open their text for at most this long
    key_cache_s: float = Field(default=10.0, ge=0.0)

    # Semantic memory: a Qdrant server at qdrant_url, Qdrant's local mode at qdrant_path, else vectors in memory's
    # PostgreSQL schema, searched by pgvector's HNSW index when the server has the extension ("auto" or
    # "pgvector", which fails the start without it), else in process ("in_process": the newest
    # vectors_max_per_tenant per tenant)
    vector_index: Literal["auto", "pgvector", "in_process"] = "auto"
    qdrant_url: str | None = None
    qdrant_api_key: SecretStr | None = None
    qdrant_path: Path | None = None
    qdrant_collection: str = "agentbus_memory"
    vectors_max_per_tenant: int = Field(default=20_000, ge=1)

    # Embeddings (OpenAI-compatible); empty URL disables semantic memory
    embeddings_url: str | None = "http://127.0.0.1:8090/v1"
    embeddings_model: str = "multilingual-e5-small-q4"
    embeddings_api_key: SecretStr | None = None
    embeddings_dim: int = 384
    embeddings_timeout_s: float = 10.0
    # after a failed embeddings call, turns skip recall for this long instead of each waiting for a timeout
    embeddings_pause_s: float = Field(default=30.0, ge=0.0)
    # how often memory looks for turns whose vector was put off while embeddings were away
    embeddings_retry_s: float = Field(default=5.0, gt=0.0)

    # LLM defaults (agents may override per model in the YAML)
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str | None = None
    llm_timeout_s: float = 60.0
    llm_attempts: int = 3
    llm_max_connections: int = 4096
    # model health: every replica of the reasoner probes each configured model this often (first at start)
    model_probe_interval_s: float = Field(default=300.0, gt=0)
    # progress: stream: the least seconds between two reply.progress events carrying the answer so far
    reasoner_stream_interval_s: float = 1.0

    # HTTP
    http_host: str = "127.0.0.1"
    http_port: int | None = None
    max_body_bytes: int = 1_048_576
    ingress_publish_timeout_s: float = 10.0
    # long connections (channels in mode: stream): a replica holds a channel's connection under a lease in
    # PostgreSQL, renewed every third of this; another replica takes the connection over once it expires
    ingress_lease_ttl_s: float = 10.0
    # reconnecting a dropped connection: exponential backoff from 0.5 s up to this, with jitter
    ingress_reconnect_max_s: float = 30.0
    # how often each replica writes what it sees of its channels (webhook requests, long connections) for the
    # operator API's channel states
    ingress_channel_state_interval_s: float = Field(default=5.0, gt=0)
    push_timeout_s: float = 15.0
    push_attempts: int = 6

    # the log index (libs/agentbus/logindex.py): ingress indexes every record of every topic into PostgreSQL
    # for trace and replay; with log_archive (set by `agentbus up`, whose broker keeps its log in memory) it also
    # archives the records and snapshots the consumer groups' offsets every log_snapshot_s, to restore the log
    log_index: bool = True
    log_archive: bool = False
    log_snapshot_s: float = 5.0

    # memory's admin HTTP, which the reasoner's memory tool searches and the operator API reads conversations
    # from (empty: memory's default port on loopback)
    memory_url: str | None = None

    # telemetry
    otlp_endpoint: str | None = None
    # Jaeger's query API and UI (set by `agentbus up --tracing`): `agentbus trace` and the console's Trace page
    # link each trace to {jaeger_url}/trace/{trace id}
    jaeger_url: str | None = None
    log_level: str = "info"
    log_json: bool = True
    debug_log_bodies: bool = False

    # scheduler
    scheduler_tick_s: float = 1.0
    # the scheduler's admin HTTP, where the agent's schedule tool lists jobs (empty: its default port on loopback)
    scheduler_url: str | None = None
    # the reasoner's admin HTTP, where the operator API reads the models' health (empty: its default port)
    reasoner_url: str | None = None
    # egress's admin HTTP, where the operator API reads the delivery ledger (empty: its default port)
    egress_url: str | None = None

    # retention (libs/agentbus/retention.py): the days each service keeps its tenants' rows (turns in memory,
    # the inference ledger in the reasoner, deliveries in egress) unless a tenant's `retention` says otherwise
    # (0: forever), and how often each service prunes, in batches of retention_batch rows
    retention_turns_days: int = Field(default=0, ge=0, le=36500)
    retention_ledger_days: int = Field(default=0, ge=0, le=36500)
    retention_deliveries_days: int = Field(default=0, ge=0, le=36500)
    retention_interval_s: float = Field(default=3600.0, gt=0)
    retention_batch: int = Field(default=1000, ge=1, le=100_000)
    # the topics' retention.ms (what `agentbus init` sets; unset: Kafka's default, 7 days; -1: forever): the
    # longest a record can wait in a topic to be delivered again (docs/decisions/0007-retention.md)
    topic_retention_ms: int | None = Field(default=None, ge=-1)
    # processed-event, de-duplication and firing records are kept this long (unset: twice the longest
    # redelivery window; it may not be shorter than that window)
    prune_horizon_days: float | None = Field(default=None, gt=0)

    # the deployment's name (dev, staging, production): on every span and log line
    environment: str = "dev"
    # set by `agentbus up` (the embedded development stack, what `make up` and the tests start) for the
    # services it runs: only then may credentials be `default:` values or the published demo secrets
    dev_mode: bool = False


    @model_validator(mode="after")
    def _horizon_covers_redelivery(self) -> Settings:
        from agentbus.retention import horizon_problem

        problem = horizon_problem(self.prune_horizon_days, self.topic_retention_ms)
        if problem:
            raise ValueError(problem)
        return self

    def port_for(self, service: str) -> int:
        return self.http_port if self.http_port is not None else DEFAULT_PORTS[service]
