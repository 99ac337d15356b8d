"""The resource server in front of MCP apps (the /mcp endpoint)."""
