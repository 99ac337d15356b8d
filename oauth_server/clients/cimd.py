"""Client ID Metadata Documents: DOT's SSRF-hardened fetcher plus muster's policy on what a document may say.

DOT (`oauth2_provider.cimd`) resolves an https `client_id` URL to a public Application: it validates the URL,
resolves the host once and connects to that validated address (no second lookup, so no DNS rebinding), follows
no redirects, bounds time and size, backs failed URLs off (a failure is never cached as a success) and keeps the
last good document when a refresh fails. `PolicyFetcher` (the `CIMD_METADATA_FETCHER`) adds, before DOT builds
the Application:

- no query in the URL; a per-host fetch budget (`rate_limit.cimd_rate`/`cimd_burst`);
- the document's `client_id` equals the URL exactly; `client_name` and `redirect_uris` are present; every
  redirect URI passes `check_redirect_uri`; no shared secret;
- auth-method negotiation: a document naming another method but also offering `none` (ChatGPT's) is a public
  client using `none`; one offering no usable method is refused;
- the development switches `allowPrivateIPClientMetadata` (loopback/private hosts) and `extraCAFile`, which
  DOT's fetch has no hook for: the document is fetched through `oauth_server.upstream.outbound`, the same
  checked and pinned connection (DOT's public-address rule) that the identity-provider calls use.

Every outcome is audited (`cimd_fetched`, `cimd_failed`, `cimd_blocked`, `cimd_id_mismatch`) with a short
reason, never the document. A refused document makes the `client_id` an unknown client: a 400 at /oauth/authorize
and 401 `invalid_client` at /oauth/token, never a redirect.
"""

import logging
from typing import Any
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from django.db.models.signals import post_save
from oauth2_provider.cimd import CIMDError, SafeMetadataFetcher
from oauth2_provider.models import get_application_model
from oauth2_provider.settings import oauth2_settings

from infra import audit, ratelimit
from infra.client_ip import bucket_key
from oauth_server import dot_compat
from oauth_server.clients.redirect_uris import RedirectURIError, check_redirect_uri
from oauth_server.models import ClientRegistration
from oauth_server.upstream import outbound

log = logging.getLogger("muster.cimd")

PUBLIC_METHOD = "none"


class CIMDBlocked(CIMDError):
    """A fetch refused before any request: a non-public address or the per-host budget is spent."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class CIMDMismatch(CIMDError):
    """The document's `client_id` is not the URL it was fetched from."""


def log_development_switches() -> None:
    """Warn once at start about the development-only switches that weaken outbound fetches."""
    config = settings.MUSTER_CONFIG
    if config.allow_private_ip_client_metadata:
        log.warning(
            "allowPrivateIPClientMetadata is on: client metadata documents may be fetched from loopback and "
            "private addresses (development only; this weakens SSRF protection)"
        )
    if config.extra_ca_file:
        log.warning(
            "extraCAFile is set: %s is trusted for outbound fetches in addition to the system CAs (development only)",
            config.extra_ca_file,
        )


def negotiate_auth_method(document: dict[str, Any]) -> dict[str, Any]:
    """CIMD clients are public: keep `none`, pick it from `token_endpoint_auth_methods_supported`, or refuse."""
    method = document.get("token_endpoint_auth_method", PUBLIC_METHOD)
    if method == PUBLIC_METHOD:
        return document
    offered = document.get("token_endpoint_auth_methods_supported")
    if isinstance(offered, list) and PUBLIC_METHOD in offered:
        return {**document, "token_endpoint_auth_method": PUBLIC_METHOD}
    raise CIMDError(
        f"no usable token_endpoint_auth_method: this server accepts only 'none' for metadata-document clients, "
        f"the document offers {method!r} and does not list 'none' in token_endpoint_auth_methods_supported"
    )


def check_document(client_id: str, document: dict[str, Any]) -> dict[str, Any]:
    """Our rules for a fetched document; returns it with the auth method negotiated, or raises CIMDError."""
    if document.get("client_id") != client_id:
        raise CIMDMismatch("document client_id does not match the client_id URL")
    if "client_secret" in document or "client_secret_expires_at" in document:
        raise CIMDError("client metadata must not include client_secret or client_secret_expires_at")
    name = document.get("client_name")
    if not isinstance(name, str) or not name.strip():
        raise CIMDError("client_name is required")
    redirect_uris = document.get("redirect_uris")
    if not isinstance(redirect_uris, list) or not redirect_uris or not all(isinstance(u, str) for u in redirect_uris):
        raise CIMDError("redirect_uris must be a non-empty array of strings")
    for uri in redirect_uris:
        try:
            check_redirect_uri(uri)
        except RedirectURIError as error:
            raise CIMDError(f"redirect URI refused: {error}") from None
    document = negotiate_auth_method(document)
    dot_compat.check_cimd_document(document)  # DOT's own checks (grant types...), so their refusals are audited
    return document


class PolicyFetcher(SafeMetadataFetcher):
    """DOT's SSRF-hardened fetch (validated IP pinned at connect, no redirects, deadline, size cap) plus our policy."""

    def fetch(self, client_id: str) -> tuple[dict[str, Any], int]:
        host = urlsplit(client_id).hostname or ""
        try:
            document, max_age = self._fetch(client_id)
            document = check_document(client_id, document)
        except CIMDBlocked as error:
            audit.record("cimd_blocked", "failure", client_id=client_id, host=host, reason=error.reason)
            raise
        except CIMDMismatch as error:
            audit.record("cimd_id_mismatch", "failure", client_id=client_id, host=host, reason=str(error))
            raise
        except CIMDError as error:
            audit.record("cimd_failed", "failure", client_id=client_id, host=host, reason=str(error)[:200])
            raise
        audit.record("cimd_fetched", client_id=client_id, host=host, max_age=max_age)
        return document, max_age

    def _fetch(self, client_id: str) -> tuple[dict[str, Any], int]:
        parsed = dot_compat.cimd_client_id_url(client_id)
        if parsed.query:
            raise CIMDError("client_id URL must not contain a query component")
        hostname = parsed.hostname or ""
        if not ratelimit.cimd_fetches().take(hostname.lower()).allowed:
            raise CIMDBlocked("too many client metadata fetches for this host", "rate_limited")
        timeout = oauth2_settings.CIMD_FETCH_TIMEOUT_SECONDS  # one budget shared by every address, as in DOT
        allow_private = settings.MUSTER_CONFIG.allow_private_ip_client_metadata
        accept = {"Accept": "application/json, application/*+json"}
        try:
            with outbound.pinned(
                "GET", client_id, allow_private=allow_private, headers=accept, timeout=timeout
            ) as answer:
                return dot_compat.read_cimd_document(self, answer)
        except outbound.OutboundBlocked as error:
            raise CIMDBlocked(f"client_id host: {error}", "private_address") from None
        except (outbound.OutboundError, urllib3.exceptions.HTTPError) as error:
            raise CIMDError(f"could not fetch client_id document: {error}"[:200]) from None


def _record_registration(sender: Any, instance: Any, **kwargs: Any) -> None:
    """Every Application DOT creates from a metadata document gets its `ClientRegistration(gate="cimd")`."""
    if instance.registration_source != instance.RegistrationSource.CIMD:
        return
    ip = audit.client_ip.get()
    ClientRegistration.objects.get_or_create(
        application=instance,
        defaults={"gate": ClientRegistration.Gate.CIMD, "registered_from": audit.hashed(bucket_key(ip)) if ip else ""},
    )


post_save.connect(_record_registration, sender=get_application_model(), dispatch_uid="muster-cimd-registration")
