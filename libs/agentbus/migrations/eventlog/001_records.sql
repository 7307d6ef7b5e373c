-- The index of the event log (and, on the embedded stack, its archive): one row per record of every agentbus
-- topic, written by ingress's log indexer as records arrive. trace and replay look records up here instead of
-- reading every topic from offset 0. value/key/headers are kept only when the log is archived
-- (AGENTBUS_LOG_ARCHIVE, set by `agentbus up` on its in-memory broker), which is what lets `agentbus up`
-- restore the log into a fresh broker.
CREATE TABLE records (
    topic text NOT NULL,
    part integer NOT NULL,
    "offset" bigint NOT NULL,
    event_id uuid,                 -- NULL: the record is not an agentbus event (kept for the archive)
    event_type text,
    event_version integer,
    tenant text,
    conversation text,
    correlation_id uuid,
    occurred_at timestamptz,
    replay_run text,
    ts_ms bigint NOT NULL,         -- the record's own timestamp
    key bytea,
    value bytea,
    headers jsonb,                 -- [[name, base64 value], ...]
    PRIMARY KEY (topic, part, "offset")
);
CREATE INDEX records_correlation ON records (correlation_id);
CREATE INDEX records_event ON records (event_id);
CREATE INDEX records_conversation ON records (tenant, conversation, occurred_at);
CREATE INDEX records_type_time ON records (event_type, occurred_at);

-- Consumer groups' committed offsets, snapshotted by the indexer on the embedded stack, so a restored log
-- resumes every service where it stopped (a few seconds earlier at worst: handlers are idempotent).
CREATE TABLE group_offsets (
    group_id text NOT NULL,
    topic text NOT NULL,
    part integer NOT NULL,
    committed bigint NOT NULL,
    taken_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, part)
);
