-- Long connections: at most one ingress replica holds a channel's connection to its platform at a time.
-- A holder renews its row before `expires_at`; once that has passed, any replica may take the lease over,
-- and `epoch` grows with every change of holder.
CREATE TABLE connection_leases (
    channel text PRIMARY KEY,
    holder text NOT NULL,
    epoch bigint NOT NULL DEFAULT 1,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
