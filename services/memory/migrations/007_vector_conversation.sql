-- The operator API lists the memories made in one conversation (and forgets one of them by id).
CREATE INDEX vectors_tenant_conversation_seq ON vectors (tenant, conversation, seq);
