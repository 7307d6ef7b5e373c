-- One data key per person of a tenant: message text in events is sealed with it (AES-256-GCM). Forgetting a
-- person deletes their key, so every copy of their text in the log becomes unreadable (crypto-shredding).
CREATE TABLE user_keys (
    kid text PRIMARY KEY,
    tenant text NOT NULL,
    user_id text NOT NULL,
    secret bytea NOT NULL CHECK (length(secret) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX user_keys_owner ON user_keys (tenant, user_id);

-- The keys deleted, and when: ids only (the secret is gone), so an erasure can say what it shredded and a
-- repeated one that there was nothing left.
CREATE TABLE forgotten_keys (
    kid text PRIMARY KEY,
    tenant text NOT NULL,
    user_id text NOT NULL,
    forgotten_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX forgotten_keys_owner ON forgotten_keys (tenant, user_id);
