-- What the operator API shows of a turn besides its text: the chain it belongs to and its attachments (by
-- reference), and an index to list a tenant's conversations by their last activity.
ALTER TABLE turns ADD COLUMN correlation_id uuid;
ALTER TABLE turns ADD COLUMN attachments jsonb NOT NULL DEFAULT '[]';
CREATE INDEX turns_tenant_conversation_seq ON turns (tenant, conversation, seq);
