-- Retention deletes a tenant's recorded steps older than its ledger days, and the token counts' records of
-- inferences older than the pruning horizon (libs/agentbus/retention.py): found by these indexes.
CREATE INDEX steps_tenant_created ON steps (tenant, created_at);
CREATE INDEX token_usage_counted_at ON token_usage_counted (counted_at);
