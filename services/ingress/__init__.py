"""Ingress: the HTTP edge. Verifies channel webhooks, de-duplicates platform retries, publishes
``message.received`` (acks=all) and only then answers the platform."""
