"""OpenID Provider discovery, retried in the background (1 s, doubling, at most 30 s) until it succeeds."""

import logging
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from infra.urls import is_loopback_host
from oauth_server.upstream import outbound
from oauth_server.upstream.provider import UpstreamProvider, configured

log = logging.getLogger("muster.upstream")

FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 30.0
# Asymmetric algorithms only: an HMAC id_token would be keyed with our client secret, `none` is unsigned.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class DiscoveryError(Exception):
    """The provider's discovery document is missing, unreachable or unusable."""


@dataclass(frozen=True)
class ProviderMetadata:
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str
    revocation_endpoint: str
    signing_algorithms: tuple[str, ...]


_metadata: ProviderMetadata | None = None
_lock = threading.Lock()
_retrying = threading.Event()


def _endpoint(document: dict[str, object], name: str, provider: UpstreamProvider, required: bool = True) -> str:
    value = document.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value:
        raise DiscoveryError(f"discovery document has no {name}")
    parts = urlsplit(value)
    loopback_http = parts.scheme == "http" and is_loopback_host(parts.hostname or "") and provider.allow_private
    if not parts.hostname or (parts.scheme != "https" and not loopback_http):
        raise DiscoveryError(f"{name} must be an https URL")
    return value


def discover(provider: UpstreamProvider) -> ProviderMetadata:
    """One attempt at `<issuer>/.well-known/openid-configuration`; raises DiscoveryError."""
    url = provider.issuer + "/.well-known/openid-configuration"
    try:
        response = outbound.request("GET", url, allow_private=provider.allow_private)
        document = response.json()
    except outbound.OutboundError as exc:
        raise DiscoveryError(str(exc)) from exc
    if response.status != 200 or not isinstance(document, dict):
        raise DiscoveryError(f"discovery answered HTTP {response.status}")
    if not provider.issuer_matches(document.get("issuer")):
        raise DiscoveryError("the discovery document names another issuer")
    offered = document.get("id_token_signing_alg_values_supported") or ["RS256"]
    algorithms = tuple(alg for alg in SIGNING_ALGORITHMS if isinstance(offered, list) and alg in offered)
    if not algorithms:
        raise DiscoveryError("the provider offers no asymmetric id_token signing algorithm")
    return ProviderMetadata(
        authorization_endpoint=_endpoint(document, "authorization_endpoint", provider),
        token_endpoint=_endpoint(document, "token_endpoint", provider),
        jwks_uri=_endpoint(document, "jwks_uri", provider),
        userinfo_endpoint=_endpoint(document, "userinfo_endpoint", provider, required=False),
        revocation_endpoint=_endpoint(document, "revocation_endpoint", provider, required=False),
        signing_algorithms=algorithms,
    )


def metadata() -> ProviderMetadata | None:
    """The discovered endpoints, or None while discovery is pending (or the provider is local)."""
    return _metadata


def ready() -> bool:
    """True when users can sign in: a local provider, or an upstream one whose discovery succeeded."""
    return _metadata is not None or configured() is None


def ensure() -> ProviderMetadata:
    """The discovered endpoints, discovering now (once, in this thread) if needed; raises DiscoveryError."""
    global _metadata
    provider = configured()
    if provider is None:
        raise DiscoveryError("provider is local; there is no upstream provider")
    with _lock:
        if _metadata is None:
            _metadata = discover(provider)
            log.info("OIDC discovery of %s succeeded", provider.issuer)
        return _metadata


def forget() -> None:
    """Drop what was discovered (tests, and a provider change in the configuration)."""
    global _metadata
    with _lock:
        _metadata = None


def start_in_background() -> None:
    """Discover without holding start-up: retry 1 s, 2 s, 4 s … at most 30 s apart until it works."""
    if configured() is None or _retrying.is_set():
        return
    _retrying.set()
    threading.Thread(target=_retry_until_discovered, name="oidc-discovery", daemon=True).start()


def _retry_until_discovered() -> None:
    delay = FIRST_RETRY_SECONDS
    while True:
        try:
            ensure()
            return
        except DiscoveryError as exc:
            log.warning("OIDC discovery failed (%s); serving degraded, retrying in %.0f s", exc, delay)
        time.sleep(delay)
        delay = min(delay * 2, MAX_RETRY_SECONDS)
