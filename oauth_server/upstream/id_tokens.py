"""The provider's id_token checked as OIDC Core §3.1.3.7 asks: signature (cached JWKS), iss, aud, azp, exp, nonce."""

import hashlib
import hmac
from typing import Any

import jwt
from django.core.cache import cache

from oauth_server.upstream import outbound
from oauth_server.upstream.discovery import ProviderMetadata
from oauth_server.upstream.provider import UpstreamProvider

JWKS_CACHE_SECONDS = 3600
# An unknown `kid` refetches the key set, at most this often (a rotated key is picked up; a forged kid costs little).
JWKS_REFETCH_SECONDS = 10
CLOCK_SKEW_SECONDS = 60


class IdTokenError(Exception):
    """The id_token must not be trusted; `reason` is a short word for the audit log."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _fetch_keys(metadata: ProviderMetadata, provider: UpstreamProvider) -> list[dict[str, Any]]:
    try:
        document = outbound.request("GET", metadata.jwks_uri, allow_private=provider.allow_private).json()
    except outbound.OutboundError as exc:
        raise IdTokenError("jwks_unavailable", f"the provider's keys could not be fetched: {exc}") from exc
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise IdTokenError("jwks_unavailable", "the provider's key set is malformed")
    return [key for key in keys if isinstance(key, dict)]


def _matching(keys: list[dict[str, Any]], kid: object, alg: str) -> dict[str, Any] | None:
    for key in keys:
        if (kid is None or key.get("kid") == kid) and key.get("alg", alg) == alg and key.get("use", "sig") == "sig":
            return key
    return None


def signing_key(metadata: ProviderMetadata, provider: UpstreamProvider, kid: object, alg: str) -> jwt.PyJWK:
    """The provider's key for this token, from the cached key set, refetched once when the kid is new."""
    cache_key = "oidc-jwks:" + hashlib.sha256(metadata.jwks_uri.encode()).hexdigest()
    keys = cache.get(cache_key)
    key = _matching(keys, kid, alg) if keys else None
    if key is None and (not keys or cache.add(cache_key + ":refetched", 1, JWKS_REFETCH_SECONDS)):
        keys = _fetch_keys(metadata, provider)
        cache.set(cache_key, keys, JWKS_CACHE_SECONDS)
        key = _matching(keys, kid, alg)
    if key is None:
        raise IdTokenError("unknown_key", "the id_token is signed with a key the provider does not publish")
    try:
        return jwt.PyJWK(key, algorithm=alg)
    except jwt.PyJWTError as exc:
        raise IdTokenError("unknown_key", f"the provider's key is unusable: {exc}") from exc


def verify(
    id_token: object,
    provider: UpstreamProvider,
    metadata: ProviderMetadata,
    *,
    nonce: str | None,
    subject: str | None = None,
) -> dict[str, Any]:
    """The verified claims; `nonce` is checked at sign-in, `subject` when a refresh returns a new id_token."""
    if not isinstance(id_token, str) or not id_token:
        raise IdTokenError("missing", "the provider returned no id_token")
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError as exc:
        raise IdTokenError("malformed", "the id_token is not a JWT") from exc
    alg = header.get("alg")
    if alg not in metadata.signing_algorithms:
        raise IdTokenError("algorithm", f"the id_token algorithm {str(alg)[:16]!r} is not accepted")
    key = signing_key(metadata, provider, header.get("kid"), alg)
    try:
        claims = jwt.decode(
            id_token,
            key,
            algorithms=[alg],
            audience=provider.client_id,
            leeway=CLOCK_SKEW_SECONDS,
            options={"require": ["iss", "sub", "aud", "exp", "iat"], "verify_iss": False},
        )
    except jwt.InvalidSignatureError as exc:
        raise IdTokenError("signature", "the id_token signature does not verify") from exc
    except jwt.InvalidAudienceError as exc:
        raise IdTokenError("audience", "the id_token was issued to another client") from exc
    except jwt.ExpiredSignatureError as exc:
        raise IdTokenError("expired", "the id_token has expired") from exc
    except jwt.PyJWTError as exc:
        raise IdTokenError("malformed", f"the id_token is invalid: {exc}") from exc
    if not provider.issuer_matches(claims["iss"]):
        raise IdTokenError("issuer", "the id_token comes from another issuer")
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != provider.client_id:
        raise IdTokenError("audience", "the id_token names several audiences and another authorized party")
    if nonce is not None and not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
        raise IdTokenError("nonce", "the id_token nonce does not match this sign-in")
    if subject is not None and claims["sub"] != subject:
        raise IdTokenError("subject", "the refreshed id_token names another user")
    return claims
