"""Egress: pushes replies to chat platforms, at most once, with retries and per-target rate limits."""
