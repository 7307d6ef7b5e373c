-- The tenant and conversation of each inference, so operators can list them (rows from before have none).
ALTER TABLE inferences ADD COLUMN tenant text;
ALTER TABLE inferences ADD COLUMN conversation text;
CREATE INDEX inferences_tenant_created ON inferences (tenant, created_at DESC, input_event_id DESC);
