"""Dynamic Client Registration policy (RFC 7591, muster's rules): what a client may ask for and who may register it.

Pure functions over the parsed JSON body and the configuration; the view (oauth_server.views.register) does the
limits, the database and the HTTP. Every refusal is a `RegistrationError` carrying the RFC 7591 error code.
"""

import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from oauth2_provider.utils import parse_bearer_token

from infra.config import Config
from oauth_server.clients.redirect_uris import RedirectURIError, check_redirect_uri, normalised
from oauth_server.models import ClientRegistration

Gate = ClientRegistration.Gate

AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")
DEFAULT_AUTH_METHOD = "client_secret_basic"  # RFC 7591 §2: the default when the client names none
GRANT_TYPES = ("authorization_code", "refresh_token")
RESPONSE_TYPES = ("code",)
MAX_CLIENT_NAME = 255  # muster allows 256; DOT's Application.name holds 255
FORBIDDEN_NAME_CHARACTERS = frozenset("<>\"'`")

UNAUTHENTICATED = (
    "Registration requires authentication. Provide a valid registration token "
    "(Authorization: Bearer <token>) or use a trusted redirect URI or scheme."
)
PUBLIC_NOT_ENABLED = (
    "Public client registration is not enabled on this server. Contact the server administrator, "
    "or register a confidential client (token_endpoint_auth_method client_secret_basic or client_secret_post)."
)


@dataclass(eq=False)
class RegistrationError(Exception):
    """A refused registration: the OAuth error, a description safe to show, and the reason for the audit log."""

    error: str
    description: str
    reason: str
    status: int = 400
    headers: dict[str, str] = field(default_factory=dict)


def invalid_metadata(description: str, reason: str = "invalid_client_metadata") -> RegistrationError:
    return RegistrationError("invalid_client_metadata", description, reason)


@dataclass(frozen=True)
class ClientMetadata:
    """The validated request: only what we store or answer with (scopes are checked, then dropped)."""

    redirect_uris: tuple[str, ...]
    client_name: str
    token_endpoint_auth_method: str

    @property
    def public(self) -> bool:
        return self.token_endpoint_auth_method == "none"


def parse_body(body: bytes) -> dict[str, Any]:
    """The JSON object sent; anything else (bad UTF-8 or JSON, absurd nesting, not an object) is refused."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise invalid_metadata("The request body must be valid JSON", "malformed_json") from None
    if not isinstance(data, dict):
        raise invalid_metadata("The request body must be a JSON object", "malformed_json")
    return data


def client_metadata(data: dict[str, Any]) -> ClientMetadata:
    """Validate the RFC 7591 fields we honour; unknown fields are ignored, `null` counts as absent."""
    redirect_uris = _redirect_uris(data.get("redirect_uris"))
    name = _client_name(data.get("client_name"))
    method = data.get("token_endpoint_auth_method")
    if method is None:
        method = DEFAULT_AUTH_METHOD
    if method not in AUTH_METHODS:
        raise invalid_metadata(
            f"Unsupported token_endpoint_auth_method; use one of {', '.join(AUTH_METHODS)}", "auth_method"
        )
    _subset(data.get("grant_types"), "grant_types", GRANT_TYPES)
    _subset(data.get("response_types"), "response_types", RESPONSE_TYPES)
    scope = data.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise invalid_metadata("scope must be a space-separated string", "scope")
    scopes = data.get("scopes")
    if scopes is not None and not (isinstance(scopes, list) and all(isinstance(s, str) for s in scopes)):
        raise invalid_metadata("scopes must be an array of strings", "scope")
    return ClientMetadata(redirect_uris, name, method)


def _redirect_uris(value: object) -> tuple[str, ...]:
    if value is None or value == []:
        raise RegistrationError("invalid_redirect_uri", "At least one redirect URI is required", "invalid_redirect_uri")
    if not isinstance(value, list) or not all(isinstance(uri, str) for uri in value):
        raise invalid_metadata("redirect_uris must be an array of strings", "invalid_redirect_uri")
    for uri in value:
        try:
            check_redirect_uri(uri)
        except RedirectURIError as exc:
            raise RegistrationError(
                "invalid_redirect_uri", f"Invalid redirect URI: {exc}", "invalid_redirect_uri"
            ) from None
    return tuple(dict.fromkeys(value))  # duplicates once, order kept


def _client_name(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid_metadata("client_name must be a string", "client_name")
    if len(value) > MAX_CLIENT_NAME:
        raise invalid_metadata(f"client_name must be at most {MAX_CLIENT_NAME} characters", "client_name")
    if not value.isprintable() or FORBIDDEN_NAME_CHARACTERS.intersection(value):
        raise invalid_metadata("client_name must be printable characters without < > \" ' or `", "client_name")
    return value


def _subset(value: object, name: str, allowed: tuple[str, ...]) -> None:
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise invalid_metadata(f"{name} must be an array of strings", name)
    unsupported = [item for item in value if item not in allowed]
    if unsupported:
        raise invalid_metadata(f"Unsupported {name}; this server supports only {', '.join(allowed)}", name)


def registration_gate(metadata: ClientMetadata, authorization: str, config: Config) -> Gate:
    """Who lets this client in, in muster's order; a public client never gets in on the token alone."""
    if config.public_registration_allowed:
        return Gate.PUBLIC
    token_ok = registration_token_matches(authorization, config.registration_token)
    if token_ok and not metadata.public:
        return Gate.TOKEN
    # A wrong token is not refused on the spot: the trusted allowlists may still admit the client.
    if uses_trusted_schemes(metadata.redirect_uris, config.trusted_public_registration_schemes):
        return Gate.TRUSTED_SCHEME
    if uses_trusted_redirect_uris(metadata.redirect_uris, config.trusted_public_registration_redirect_uris):
        return Gate.TRUSTED_REDIRECT
    if token_ok:
        raise invalid_metadata(PUBLIC_NOT_ENABLED, "public_client_not_allowed")
    raise RegistrationError(
        "invalid_token",
        UNAUTHENTICATED,
        "unauthenticated",
        status=401,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def registration_token_matches(authorization: str, expected: str) -> bool:
    """`Authorization: Bearer <registrationToken>`, compared in constant time (as bytes: any characters work)."""
    presented = parse_bearer_token(authorization or "")
    if not expected or presented is None:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def uses_trusted_schemes(uris: tuple[str, ...], trusted: tuple[str, ...]) -> bool:
    """Every redirect URI uses a trusted custom scheme (all or nothing)."""
    schemes = {scheme.lower() for scheme in trusted}
    return bool(uris) and bool(schemes) and all(uri.partition(":")[0].lower() in schemes for uri in uris)


def uses_trusted_redirect_uris(uris: tuple[str, ...], trusted: tuple[str, ...]) -> bool:
    """Every redirect URI is on the trusted list, compared after normalisation (path and query keep their case)."""
    allowed = {normalised(uri) for uri in trusted}
    return bool(uris) and bool(allowed) and all(normalised(uri) in allowed for uri in uris)
