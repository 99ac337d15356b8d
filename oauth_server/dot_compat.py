"""Every private name of DOT and oauthlib we rely on, reached only from here (tests/test_compat.py pins each one).

A DOT or oauthlib upgrade that renames or reshapes one of these breaks this module and its test, never a
module that uses the public names below.
"""

from typing import Any
from urllib.parse import ParseResult

import oauth2_provider
import oauthlib
import urllib3
from django.core.exceptions import ValidationError
from oauth2_provider import cimd as dot_cimd
from oauth2_provider.cimd import SafeMetadataFetcher
from oauth2_provider.models import Grant, RefreshToken
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.views import dynamic_client_registration as dot_registration
from oauthlib.common import Request

VERSIONS = f"django-oauth-toolkit {oauth2_provider.__version__}, oauthlib {oauthlib.__version__}"


def registration_application_kwargs(metadata: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """DOT's RFC 7591 mapping of client metadata to Application fields: (fields, None), or an error second."""
    return dot_registration._build_application_kwargs(metadata)


def validation_error_description(error: ValidationError) -> str:
    """DOT's one-line description of an Application that failed `full_clean()`."""
    return dot_registration._validation_error_description(error)


def check_cimd_document(document: dict[str, Any]) -> None:
    """DOT's checks of a metadata document (grant types...), run for their CIMDError; the fields are DOT's."""
    dot_cimd._build_application_kwargs(document)


def cimd_client_id_url(client_id: str) -> ParseResult:
    """DOT's validation of a metadata-document `client_id` URL (https, a path, no userinfo or fragment...)."""
    return dot_cimd._validate_client_id_url(client_id)


def ip_is_public(ip: str) -> bool:
    """DOT's rule for an address an outbound fetch may reach (decodes IPv4 embedded in IPv6 forms)."""
    return dot_cimd._ip_is_public(ip)


def read_cimd_document(fetcher: SafeMetadataFetcher, response: urllib3.BaseHTTPResponse) -> tuple[dict[str, Any], int]:
    """DOT's reading of a fetched metadata document: status, JSON media type, size cap, max-age."""
    return fetcher._read_document(response)


class HookedValidator(OAuth2Validator):
    """DOT's validator with the private steps we extend turned into hooks named for what happened."""

    def _load_application(self, client_id: str, request: Request) -> Any:
        return self.application_loaded(super()._load_application(client_id, request), request)

    def _create_authorization_code(self, request: Request, code: dict[str, str], expires: Any = None) -> Grant:
        grant = super()._create_authorization_code(request, code, expires)
        self.authorization_code_saved(grant, request)
        return grant

    def _create_refresh_token(
        self, request: Request, refresh_token_code: str, access_token: Any, previous_refresh_token: Any
    ) -> RefreshToken:
        refresh_token = super()._create_refresh_token(request, refresh_token_code, access_token, previous_refresh_token)
        self.refresh_token_saved(refresh_token, request)
        return refresh_token

    def application_loaded(self, client: Any, request: Request) -> Any:
        """The Application DOT found for the client_id (CIMD-aware), or None; returns the one to use."""
        return client

    def authorization_code_saved(self, grant: Grant, request: Request) -> None:
        """A code was stored for this authorization request."""

    def refresh_token_saved(self, refresh_token: RefreshToken, request: Request) -> None:
        """A refresh token was stored (a code exchanged, or a refresh token rotated)."""
