"""What the server says about its configuration when it starts serving (not on every manage.py command)."""

import logging

from django.conf import settings

from oauth_server.clients.cimd import log_development_switches
from oauth_server.upstream.provider import configured

log = logging.getLogger("muster.startup")


def log_effective_settings() -> None:
    """The effective open-registration setting and provider, and warnings for weakened protections."""
    state = "on" if settings.MUSTER_CONFIG.public_registration_allowed else "off"
    log.info("open client registration (allowPublicClientRegistration) is %s", state)
    log_development_switches()
    if (provider := configured()) is not None:
        log.info("users sign in at %s (%s)", provider.issuer, provider.kind)
        if provider.allow_private:
            log.warning("allowPrivateIPOIDC is on: the identity provider may be on a private address (CWE-918)")
        if settings.MUSTER_CONFIG.encryption_key is None:
            log.warning("encryptionKey is not set: upstream tokens are encrypted with a key derived from secretKey")
