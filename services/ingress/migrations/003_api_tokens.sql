-- Operator API tokens: only the sha256 of the whole token is kept; tenant is NULL for an owner token.
CREATE TABLE api_tokens (
    id text PRIMARY KEY,
    token_hash bytea NOT NULL UNIQUE,
    name text NOT NULL,
    tenant text,
    role text NOT NULL CHECK (role IN ('owner', 'admin', 'operator', 'viewer')),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    revoked_at timestamptz,
    last_used_at timestamptz,
    CHECK ((tenant IS NULL) = (role = 'owner'))
);
CREATE INDEX api_tokens_tenant ON api_tokens (tenant);
-- audit.recorded events, kept once each (by event id), listed newest first per tenant.
CREATE TABLE audit_log (
    event_id uuid PRIMARY KEY,
    at timestamptz NOT NULL,
    actor text NOT NULL,
    actor_name text,
    tenant text,
    action text NOT NULL,
    target text NOT NULL DEFAULT '',
    outcome text NOT NULL,
    detail text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_tenant_at ON audit_log (tenant, at DESC);
CREATE INDEX audit_log_at ON audit_log (at DESC);
