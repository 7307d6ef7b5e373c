-- Retention deletes published firings older than the pruning horizon (libs/agentbus/retention.py).
CREATE INDEX firings_created ON firings (created_at) WHERE published;
