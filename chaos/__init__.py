"""The chaos run: thousands of signed webhooks through the whole platform while faults are injected.

Services are SIGKILLed and restarted one after another, the broker is frozen (SIGSTOP/SIGCONT), PostgreSQL
is restarted, the LLM fails and times out for a while, the chat platform answers 429 for a while. Then the
pipeline drains and the run counts what the platform promises never happens: an accepted message lost, a
reply pushed twice, replies of a conversation out of order (``python -m chaos``, ``make chaos``).
"""
