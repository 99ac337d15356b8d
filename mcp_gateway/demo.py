"""The built-in demo MCP app, written with the official `mcp` SDK: `whoami` and `echo`."""

from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from mcp_gateway.identity import identity_of

server = MCPServer("muster-demo", instructions="A demo MCP server behind muster's OAuth gateway.")


@server.tool()
def whoami(ctx: Context) -> dict[str, Any]:
    """Who is calling: the signed-in subject, the OAuth client, the granted scopes and the session id."""
    identity = identity_of(ctx.request_context.request.scope)
    if identity is None:
        return {"subject": None}
    return {
        "subject": identity.subject,
        "client_id": identity.client_id,
        "scopes": list(identity.scopes),
        "session_id": identity.session_id,
    }


@server.tool()
def echo(text: str) -> str:
    """Returns the text it was given."""
    return text


# Stateless, so any worker or replica can answer any request; the gateway checks Origin and Host itself.
app = server.streamable_http_app(
    streamable_http_path="/mcp",
    stateless_http=True,
    transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
)
