"""Memory: conversation history (PostgreSQL), semantic memory (Qdrant), and context assembly."""
