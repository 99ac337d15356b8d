"""The canonical MCP resource (RFC 8707): the one audience every token this server issues is bound to."""

from oauth2_provider.settings import oauth2_settings

from infra.urls import canonical_resource


def mcp_resource() -> str:
    """`resourceIdentifier`, else `<baseUrl>/mcp`, already canonical."""
    return oauth2_settings.OAUTH2_PROTECTED_RESOURCE_IDENTIFIER


def is_mcp_resource(value: str) -> bool:
    """True when `value` names the MCP resource after canonicalisation (case of scheme/host, trailing slash)."""
    try:
        return canonical_resource(value) == mcp_resource()
    except ValueError:
        return False
