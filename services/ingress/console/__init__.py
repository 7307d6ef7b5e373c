"""The web console at ``/console``: server-rendered pages on the operator API (see docs/console.md)."""
