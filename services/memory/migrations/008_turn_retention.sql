-- Retention deletes a tenant's turns older than its days (libs/agentbus/retention.py): found by this index.
CREATE INDEX turns_tenant_at ON turns (tenant, at);
