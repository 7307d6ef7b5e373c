-- The tenant's knowledge base: documents an operator loaded (knowledge.requested), for every user of the
-- tenant. The catalogue is kept here whatever store searches the chunks; a removed document keeps its row
-- (removed_at) so that a part redelivered after the removal is not stored again.
CREATE TABLE knowledge_documents (
    id uuid PRIMARY KEY,
    tenant text NOT NULL,
    title text NOT NULL DEFAULT '',
    source text,
    content_type text,
    parts int NOT NULL DEFAULT 1,
    loaded_at timestamptz,
    requested_by text NOT NULL DEFAULT '',
    removed_at timestamptz
);
CREATE INDEX knowledge_documents_tenant ON knowledge_documents (tenant, loaded_at);

-- The parts of a document stored (one knowledge.requested each): how many chunks each brought.
CREATE TABLE knowledge_parts (
    document uuid NOT NULL REFERENCES knowledge_documents (id) ON DELETE CASCADE,
    part int NOT NULL,
    chunks int NOT NULL,
    PRIMARY KEY (document, part)
);

-- The chunks and their vectors, when PostgreSQL searches them (no Qdrant URL): unit-normalised float32,
-- searched in process or, with pgvector, through the column and HNSW index memory adds at start.
CREATE TABLE knowledge_chunks (
    id uuid PRIMARY KEY,
    tenant text NOT NULL,
    document uuid NOT NULL,
    title text NOT NULL,
    section text,
    position int NOT NULL,
    text text NOT NULL,
    loaded_at timestamptz NOT NULL,
    embedding bytea NOT NULL,
    seq bigserial NOT NULL
);
CREATE INDEX knowledge_chunks_tenant ON knowledge_chunks (tenant, seq);
CREATE INDEX knowledge_chunks_document ON knowledge_chunks (tenant, document);
