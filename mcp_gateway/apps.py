"""Django app configuration for the MCP gateway."""

from django.apps import AppConfig


class McpGatewayConfig(AppConfig):
    name = "mcp_gateway"
    verbose_name = "MCP gateway"

    def ready(self) -> None:
        from mcp_gateway import checks, invalidation  # noqa: F401  (checks registers itself)

        invalidation.connect()
