"""Django app configuration for the authorization server."""

import logging

from django.apps import AppConfig

log = logging.getLogger("muster.startup")


class OAuthServerConfig(AppConfig):
    name = "oauth_server"
    verbose_name = "OAuth server"

    def ready(self) -> None:
        from django.conf import settings

        from oauth_server import checks  # noqa: F401  (registers the configuration check)
        from oauth_server.cimd import log_development_switches  # also records CIMD clients' registrations

        if not settings.MUSTER_CONFIG_ERROR:
            state = "on" if settings.MUSTER_CONFIG.public_registration_allowed else "off"
            log.info("open client registration (allowPublicClientRegistration) is %s", state)
            log_development_switches()
