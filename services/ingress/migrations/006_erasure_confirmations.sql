-- A person who asked in chat to be forgotten, until they confirm (or the question expires): one row per person
-- of a tenant, with the chat the question was asked in. Their id as its UTF-8 bytes (any id a platform sends).
CREATE TABLE erasure_confirmations (
    tenant text NOT NULL,
    user_id bytea NOT NULL,
    channel text NOT NULL,
    chat text NOT NULL,
    asked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, user_id)
);
