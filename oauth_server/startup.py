"""What the server says about its configuration when it starts serving (not on every manage.py command)."""

import logging

from django.conf import settings

from oauth_server.cimd import log_development_switches

log = logging.getLogger("muster.startup")


def log_effective_settings() -> None:
    """The effective open-registration setting, and warnings for development-only switches."""
    state = "on" if settings.MUSTER_CONFIG.public_registration_allowed else "off"
    log.info("open client registration (allowPublicClientRegistration) is %s", state)
    log_development_switches()
