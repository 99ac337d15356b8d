"""Test helpers: point the site at a real OIDC provider process and walk its sign-in through the test client."""

import dataclasses
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.test import Client

from infra.config import DexConfig, OidcConfig
from oauth_server.upstream import discovery
from tests.servers.oidc_provider import OidcProvider
from tests.support.authorize import authorize_url
from tests.support.flow import allow
from tests.support.pkce import pkce_pair

CLIENT_ID = "muster-at-the-provider"
CLIENT_SECRET = "provider-client-secret-for-tests"
SUBJECT = "alice-at-idp"


def use_provider(settings: Any, provider: OidcProvider, kind: str = "oidc", **options: Any) -> None:
    """Sign users in at `provider` (as `oidc` or `dex`), discovered now; extra Config fields in `options`."""
    identity = {"issuer_url": provider.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    section = (
        {"oidc": OidcConfig(**identity, allow_private_ip_oidc=True)}
        if kind == "oidc"
        else {"dex": DexConfig(**identity, allow_private_ip_oidc=True, **options.pop("dex", {}))}
    )
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, provider=kind, **section, **options)
    discovery.forget()
    discovery.ensure()


def local(url: str) -> str:
    """An absolute URL of this site as the test client's path and query."""
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def to_provider(browser: Client, client_id: str, **overrides: str | None) -> tuple[str, str]:
    """Authorize → /oauth/login → the provider; returns (PKCE verifier, the provider's authorize URL)."""
    verifier, challenge = pkce_pair()
    answer = browser.get(authorize_url(client_id, challenge, **overrides))
    assert answer.status_code == 302 and answer["Location"].startswith("/oauth/login?next="), answer
    sent = browser.get(answer["Location"])
    assert sent.status_code == 302, sent.content
    return verifier, sent["Location"]


def back_from_provider(browser: Client, provider: OidcProvider, provider_url: str, sub: str = SUBJECT) -> Any:
    """The user signs in at the provider; the browser brings the answer to /oauth/callback."""
    return browser.get(local(provider.sign_in(provider_url, sub)), HTTP_ACCEPT="text/html")


def upstream_code(
    browser: Client, client_id: str, provider: OidcProvider, sub: str = SUBJECT
) -> tuple[str, str, dict[str, str]]:
    """A whole sign-in at the provider and consent; returns (code, verifier, the client's redirect query)."""
    verifier, provider_url = to_provider(browser, client_id)
    back = back_from_provider(browser, provider, provider_url, sub)
    assert back.status_code == 302 and back["Location"].startswith("/oauth/authorize?"), back.content
    query = query_of(allow(browser, back["Location"]))
    return query["code"], verifier, query
