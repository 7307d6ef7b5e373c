-- Facts the agent was asked to remember live beside turns in the vector store, marked by kind and subject.
ALTER TABLE vectors ADD COLUMN kind text NOT NULL DEFAULT 'turn' CHECK (kind IN ('turn', 'fact'));
ALTER TABLE vectors ADD COLUMN subject text;

-- What was forgotten: the rows are deleted from ``vectors``; a tombstone per id tells the other replicas
-- to drop it from their in-memory index (read with the vectors' own sequence numbers on each refresh) and
-- keeps a redelivered turn from writing it again. Only ids: the forgotten text is gone.
CREATE TABLE vector_deletions (
    id uuid PRIMARY KEY,
    tenant text NOT NULL,
    writer text NOT NULL,
    deleted_at timestamptz NOT NULL DEFAULT now(),
    seq bigint NOT NULL DEFAULT nextval('vectors_seq_seq')
);
CREATE INDEX vector_deletions_tenant_seq ON vector_deletions (tenant, seq);

-- Applied memory.requested commands (written with their processed record): what each forget deleted.
CREATE TABLE memory_commands (
    event_id uuid PRIMARY KEY,
    tenant text NOT NULL,
    action text NOT NULL CHECK (action IN ('remember', 'forget')),
    subject text,
    requested_by text NOT NULL,
    deleted uuid[] NOT NULL DEFAULT '{}',
    applied_at timestamptz NOT NULL DEFAULT now()
);
