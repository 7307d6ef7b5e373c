"""Reasoner: agent profiles, LLM calls with fallback, and the inference ledger."""
