-- The keys the operator API signs its JWTs with, shared by every ingress replica (no secret in the
-- environment). The first key is made here, once: 32 bytes from two gen_random_uuid() (PostgreSQL's strong
-- random source, 244 random bits). `agentbus tokens rotate-signing-key` adds a new key and retires the old
-- one, which still verifies the JWTs it signed until they expire. At most one key is active.
CREATE TABLE signing_keys (
    kid text PRIMARY KEY,
    secret bytea NOT NULL CHECK (length(secret) >= 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    retired_at timestamptz
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((true)) WHERE retired_at IS NULL;
INSERT INTO signing_keys (kid, secret)
VALUES (substr(replace(gen_random_uuid()::text, '-', ''), 1, 12),
        decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));
