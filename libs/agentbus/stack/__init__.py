"""The embedded stack behind ``agentbus up``: broker, PostgreSQL, embeddings server, the five services."""
