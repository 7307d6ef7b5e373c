-- The tenant and conversation of each delivery, so operators can list them (rows from before have none).
ALTER TABLE deliveries ADD COLUMN tenant text;
ALTER TABLE deliveries ADD COLUMN conversation text;
CREATE INDEX deliveries_tenant_claimed ON deliveries (tenant, claimed_at DESC, reply_id DESC);
