"""Django app configuration for the authorization server."""

from django.apps import AppConfig


class OAuthServerConfig(AppConfig):
    name = "oauth_server"
    verbose_name = "OAuth server"

    def ready(self) -> None:
        from oauth_server import checks  # noqa: F401  (registers the configuration check)
