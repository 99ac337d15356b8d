"""Django app configuration for the authorization server."""

from django.apps import AppConfig


class OAuthServerConfig(AppConfig):
    name = "oauth_server"
    verbose_name = "OAuth server"

    def ready(self) -> None:
        # checks registers the configuration check; cimd records the registrations of CIMD clients;
        # session_audit writes the sign-out audit lines.
        from oauth_server import checks, session_audit  # noqa: F401
        from oauth_server.clients import cimd  # noqa: F401
