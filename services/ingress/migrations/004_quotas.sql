-- Messages accepted per tenant: the epoch seconds of the grants of the last window (a sliding window that
-- every ingress replica shares; see services/ingress/quota.py).
CREATE TABLE message_quota (
    tenant text PRIMARY KEY,
    grants float8[] NOT NULL DEFAULT '{}'
);
