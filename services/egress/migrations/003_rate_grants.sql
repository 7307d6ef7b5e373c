-- The rate limits every egress replica shares: per target, the times (epoch seconds on the database's clock)
-- of its newest grants, at most the target's limit of them, oldest first.
CREATE TABLE rate_grants (
    target text PRIMARY KEY,
    grants double precision[] NOT NULL
);
