"""The `OIDC_*` values mozilla-django-oidc reads, answered from the configured provider and its discovery."""

from typing import Any

from mozilla_django_oidc.utils import import_from_settings

from oauth_server.upstream import discovery
from oauth_server.upstream.provider import configured


def provider_setting(name: str, *default: Any) -> Any:
    """Runtime values for the provider's endpoints and our client; everything else from Django settings."""
    provider, metadata = configured(), discovery.metadata()
    values: dict[str, Any] = {
        "OIDC_USE_PKCE": True,
        "OIDC_USE_NONCE": True,
        "OIDC_STORE_ID_TOKEN": False,
        "OIDC_RP_CLIENT_ID": provider.client_id if provider else "",
        "OIDC_RP_CLIENT_SECRET": provider.client_secret if provider else "",
        "OIDC_RP_SCOPES": " ".join(provider.scopes) if provider else "openid",
        "OIDC_RP_SIGN_ALGO": metadata.signing_algorithms[0] if metadata else "RS256",
    }
    endpoints = {
        "OIDC_OP_AUTHORIZATION_ENDPOINT": metadata.authorization_endpoint if metadata else "",
        "OIDC_OP_TOKEN_ENDPOINT": metadata.token_endpoint if metadata else "",
        "OIDC_OP_USER_ENDPOINT": metadata.userinfo_endpoint if metadata else "",
        "OIDC_OP_JWKS_ENDPOINT": metadata.jwks_uri if metadata else "",
    }
    values.update(endpoints)
    if name in values:
        return values[name]
    return import_from_settings(name, *default)
