-- Whose text each turn is (the sender of a person's turn, the person a reply answered), so that forgetting a
-- person finds every turn of theirs. Rows from before have none: an erasure finds those by sender, and a
-- reply by the message it answered (its correlation id).
ALTER TABLE turns ADD COLUMN owner text;
CREATE INDEX turns_tenant_owner ON turns (tenant, owner);
