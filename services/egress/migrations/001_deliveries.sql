-- The delivery ledger: a reply is claimed before it is pushed, so it is pushed at most once.
CREATE TABLE deliveries (
    reply_id uuid PRIMARY KEY,
    correlation_id uuid NOT NULL,
    channel text NOT NULL,
    channel_type text NOT NULL,
    target text NOT NULL,
    status text NOT NULL CHECK (status IN ('pushing', 'delivered', 'failed', 'suppressed')),
    attempts int NOT NULL DEFAULT 0,
    http_status int,
    error text,
    platform_message_id text,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX deliveries_correlation ON deliveries (correlation_id);
