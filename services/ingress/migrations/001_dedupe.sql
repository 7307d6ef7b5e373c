-- Platform retries carry the same platform event id; a (channel, id) seen before is answered at once.
CREATE TABLE inbound_dedupe (
    channel text NOT NULL,
    dedupe_id text NOT NULL,
    event_id uuid NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, dedupe_id)
);
CREATE INDEX inbound_dedupe_received_at ON inbound_dedupe (received_at);
