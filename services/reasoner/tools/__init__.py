"""Tools an agent may call: built-in ones, MCP servers' tools, and plugins (the ``agentbus.tools`` entry points)."""
