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
- the development switches `allowPrivateIPClientMetadata` (loopback/private hosts) and `extraCAFile`.

Every outcome is audited (`cimd_fetched`, `cimd_failed`, `cimd_blocked`, `cimd_id_mismatch`) with a short
reason, never the document. A refused document makes the `client_id` an unknown client: a 400 at /oauth/authorize
and 401 `invalid_client` at /oauth/token, never a redirect.
"""

import logging
import socket
import ssl
import time
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from django.db.models.signals import post_save
from oauth2_provider import cimd as dot_cimd
from oauth2_provider.cimd import CIMDError, SafeMetadataFetcher
from oauth2_provider.models import get_application_model
from oauth2_provider.settings import oauth2_settings

from oauth_server import audit, ratelimit
from oauth_server.client_ip import bucket_key
from oauth_server.models import ClientRegistration
from oauth_server.redirect_uris import RedirectURIError, check_redirect_uri

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


@lru_cache(maxsize=8)
def _ssl_context(extra_ca_file: str) -> ssl.SSLContext:
    """The default CAs, plus `extraCAFile` when set (a missing or bad file fails every fetch, loudly)."""
    context = ssl.create_default_context()
    if extra_ca_file:
        context.load_verify_locations(cafile=extra_ca_file)
    return context


def ssl_context() -> ssl.SSLContext:
    return _ssl_context(settings.MUSTER_CONFIG.extra_ca_file)


def _resolve(hostname: str, port: int) -> list[str]:
    """The host's addresses; every one must be public unless `allowPrivateIPClientMetadata` is on."""
    try:
        infos = socket.getaddrinfo(hostname, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise CIMDError(f"could not resolve client_id host: {exc}") from exc
    ips = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not ips:
        raise CIMDError("client_id host did not resolve to any address")
    if not settings.MUSTER_CONFIG.allow_private_ip_client_metadata:
        # One internal address refuses the whole host, as in DOT: a mixed answer cannot smuggle a connection in.
        for ip in ips:
            if not dot_cimd._ip_is_public(ip):
                raise CIMDBlocked(f"client_id host resolves to a non-public address ({ip})", "private_address")
    return ips


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
    dot_cimd._build_application_kwargs(document)  # DOT's own checks (grant types...), so their refusals are audited
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
        parsed = dot_cimd._validate_client_id_url(client_id)
        if parsed.query:
            raise CIMDError("client_id URL must not contain a query component")
        hostname = parsed.hostname or ""
        if not ratelimit.cimd_fetches().take(hostname.lower()).allowed:
            raise CIMDBlocked("too many client metadata fetches for this host", "rate_limited")
        port = parsed.port or 443
        ips = _resolve(hostname, port)

        timeout = oauth2_settings.CIMD_FETCH_TIMEOUT_SECONDS
        headers = {"Host": parsed.netloc, "Accept": "application/json, application/*+json", "User-Agent": "muster"}
        context = ssl_context()
        deadline = time.monotonic() + timeout  # one budget shared by every address, as in DOT
        last_exc: Exception | None = None
        for ip in ips:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # Connect to the validated address; SNI, certificate check and Host use the real name (as DOT does).
            pool = urllib3.HTTPSConnectionPool(
                host=ip,
                port=port,
                timeout=urllib3.Timeout(connect=remaining, read=remaining, total=remaining),
                retries=False,
                maxsize=1,
                ssl_context=context,
                server_hostname=hostname,
            )
            try:
                response = pool.urlopen("GET", parsed.path, headers=headers, redirect=False, preload_content=False)
                try:
                    return self._read_document(response)
                finally:
                    response.release_conn()
            except urllib3.exceptions.HTTPError as exc:
                last_exc = exc
            finally:
                pool.close()
        detail = f"{type(last_exc).__name__}: {last_exc}"[:160] if last_exc else "timed out"
        raise CIMDError(f"could not fetch client_id document: {detail}")


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
