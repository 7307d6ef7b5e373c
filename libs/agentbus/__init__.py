"""agentbus: an event-sourced AI agent platform for enterprise chat.

This package is the shared kernel every service builds on: settings, the event envelope and catalogue,
topics, the Kafka bus, the database helpers, telemetry and logging. Services live in ``agentbus.services``.
"""

__version__ = "0.1.0"
