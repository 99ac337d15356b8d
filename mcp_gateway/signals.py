"""Signals of the MCP gateway."""

from django.dispatch import Signal

# Sent on every authenticated /mcp request with `identity` (muster's onAuthenticated). Without receivers
# it costs a dictionary lookup; receivers should be async or quick.
authenticated = Signal()
