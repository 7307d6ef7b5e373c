-- What each replica sees of each channel (webhook requests, its long connection), written every few seconds by
-- that replica and read by the operator API, so any replica answers with every replica's view.
CREATE TABLE channel_states (
    channel text NOT NULL,
    replica text NOT NULL,
    view jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, replica)
);
CREATE INDEX channel_states_updated_at ON channel_states (updated_at);
