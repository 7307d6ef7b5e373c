"""The operator API (``/api/v1``): tokens, roles per tenant, audit, and the first read and write endpoints."""
