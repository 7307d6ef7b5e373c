-- A claim released after retryable failures is 'pending': known not delivered, so it may be pushed again.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pushing', 'pending', 'delivered', 'failed', 'suppressed'));
