-- Semantic memory of the embedded stack (no Qdrant URL): unit-normalised float32 vectors, searched in process.
CREATE TABLE vectors (
    id uuid PRIMARY KEY,
    tenant text NOT NULL,
    conversation text NOT NULL,
    role text NOT NULL,
    text text NOT NULL,
    at timestamptz NOT NULL,
    embedding bytea NOT NULL,
    writer text NOT NULL,
    seq bigserial NOT NULL
);
CREATE INDEX vectors_tenant_seq ON vectors (tenant, seq);
