"""Which identity provider users sign in at, and what this site asks it for (muster's Dex and Google rules)."""

import base64
from dataclasses import dataclass, field
from urllib.parse import quote_plus

from django.conf import settings

from oauth_server.upstream import outbound

GOOGLE_ISSUER = "https://accounts.google.com"
# Google signs some id_tokens with the scheme-less issuer; both are Google.
GOOGLE_ISSUERS = (GOOGLE_ISSUER, "accounts.google.com")
DEX_SCOPES = ("openid", "profile", "email", "groups", "offline_access")
OIDC_SCOPES = ("openid", "profile", "email", "offline_access")
GOOGLE_SCOPES = ("openid", "email", "profile")
MAX_GROUPS = 600


@dataclass(frozen=True)
class UpstreamProvider:
    """One configured provider: where it is, who we are there, and what the sign-in request carries."""

    kind: str
    issuer: str
    client_id: str
    client_secret: str
    scopes: tuple[str, ...]
    allow_private: bool
    extra_params: dict[str, str] = field(default_factory=dict)
    accepted_issuers: tuple[str, ...] = ()

    @property
    def callback_url(self) -> str:
        return settings.MUSTER_CONFIG.base_url + "/oauth/callback"

    def issuer_matches(self, iss: object) -> bool:
        return iss in (self.accepted_issuers or (self.issuer,))

    def post(self, url: str, form: dict[str, str]) -> outbound.Response:
        """A form POST to one of the provider's endpoints, as this client (client_secret_basic)."""
        # RFC 6749 §2.3.1: each part form-encoded before Base64.
        pair = f"{quote_plus(self.client_id)}:{quote_plus(self.client_secret)}"
        basic = {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
        return outbound.request("POST", url, allow_private=self.allow_private, form=form, headers=basic)


def configured() -> UpstreamProvider | None:
    """The provider from the configuration; None for `provider: local` (Django accounts)."""
    config = settings.MUSTER_CONFIG
    if config.provider == "dex":
        dex = config.dex
        audiences = tuple(f"audience:server:client_id:{aud}" for aud in dex.required_audiences)
        return UpstreamProvider(
            kind="dex",
            issuer=dex.issuer_url,
            client_id=dex.client_id,
            client_secret=dex.client_secret,
            scopes=DEX_SCOPES + audiences,
            allow_private=dex.allow_private_ip_oidc,
            extra_params={"connector_id": dex.connector_id} if dex.connector_id else {},
        )
    if config.provider == "google":
        return UpstreamProvider(
            kind="google",
            issuer=GOOGLE_ISSUER,
            client_id=config.google.client_id,
            client_secret=config.google.client_secret,
            scopes=GOOGLE_SCOPES,
            allow_private=False,
            # A refresh token only with offline access; prompt=consent makes Google issue it again each sign-in.
            extra_params={"access_type": "offline", "prompt": "consent"},
            accepted_issuers=GOOGLE_ISSUERS,
        )
    if config.provider == "oidc":
        oidc = config.oidc
        return UpstreamProvider(
            kind="oidc",
            issuer=oidc.issuer_url,
            client_id=oidc.client_id,
            client_secret=oidc.client_secret,
            scopes=OIDC_SCOPES,
            allow_private=oidc.allow_private_ip_oidc,
        )
    return None
