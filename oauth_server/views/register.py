"""POST /oauth/register: RFC 7591 registration on DOT's view, with muster's gates and limits; no RFC 7592 management.

DOT maps the metadata to an Application and validates it; we skip its registration access token (management
stays off, so no user-less AccessToken row is ever written) and record how each client got in.
"""

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import patch_vary_headers
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider.compat import login_not_required
from oauth2_provider.models import Application
from oauth2_provider.views.dynamic_client_registration import DynamicClientRegistrationView

from infra import audit, ratelimit
from infra.client_ip import bucket_key, django_client_ip
from infra.errors import oauth_error
from infra.locks import LockTimeout, LockUnavailable, cache_lock
from infra.outages import UNAVAILABLE
from infra.urls import canonical_resource
from oauth_server import throttle
from oauth_server.clients.registration import (
    GRANT_TYPES,
    RESPONSE_TYPES,
    ClientMetadata,
    RegistrationError,
    client_metadata,
    parse_body,
    registration_gate,
)
from oauth_server.dot_compat import registration_application_kwargs, validation_error_description
from oauth_server.models import ClientRegistration

STORED_CLIENTS_RETRY_AFTER = 3600
CORS_ALLOW_METHODS = "POST, OPTIONS"
CORS_ALLOW_HEADERS = "Authorization, Content-Type"


# An API for clients without cookies; as_view() takes csrf_exempt from our own dispatch, so it is repeated here.
@method_decorator(csrf_exempt, name="dispatch")
@method_decorator(login_not_required, name="dispatch")
class RegisterView(DynamicClientRegistrationView):
    """Limits first (per IP per hour, stored clients per IP), then the body, then who may register it."""

    http_method_names = ["post", "options"]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().dispatch(request, *args, **kwargs)
        return with_cors(request, response)

    def options(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """CORS preflight: listed origins learn what they may send; others get no CORS headers."""
        response = HttpResponse(status=204)
        if origin_listed(request.headers.get("Origin")):
            response["Access-Control-Allow-Methods"] = CORS_ALLOW_METHODS
            response["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
            response["Access-Control-Max-Age"] = "3600"
        return response

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        registered_from = audit.hashed(bucket_key(django_client_ip(request))) or ""
        decision = ratelimit.registrations().take(registered_from or "-")
        if not decision.allowed:
            return throttle.refused("registration", decision)
        try:
            # One registration at a time per IP bucket, so the stored-clients cap holds under concurrency.
            with cache_lock(f"register:{registered_from or '-'}"):
                return self._register(request, registered_from)
        except LockUnavailable:  # Redis is down: the outage's answer, as every endpoint gives it
            return UNAVAILABLE.django_response()
        except LockTimeout:
            return oauth_error("temporarily_unavailable", "Another registration is in progress; retry", 503)

    def _register(self, request: HttpRequest, registered_from: str) -> HttpResponse:
        cap = settings.MUSTER_CONFIG.rate_limit.clients_per_ip
        if ClientRegistration.objects.filter(registered_from=registered_from).count() >= cap:
            audit.record("registration_refused", "failure", reason="clients_per_ip")
            return throttle.too_many_requests(ratelimit.Decision(False, STORED_CLIENTS_RETRY_AFTER))
        try:
            metadata = self._metadata(request)
            gate = registration_gate(metadata, request.headers.get("Authorization", ""), settings.MUSTER_CONFIG)
            application, secret = self._create(metadata, gate, registered_from)
        except RegistrationError as refusal:
            audit.record("registration_refused", "failure", reason=refusal.reason)
            return oauth_error(refusal.error, refusal.description, refusal.status, refusal.headers or None)
        audit.record(
            "client_registered",
            client_id=application.client_id,
            gate=gate.value,
            token_endpoint_auth_method=metadata.token_endpoint_auth_method,
        )
        return JsonResponse(registration_response(application, metadata, secret), status=201)

    @staticmethod
    def _metadata(request: HttpRequest) -> ClientMetadata:
        if (request.content_type or "").lower() != "application/json":
            raise RegistrationError(
                "invalid_client_metadata",
                "The request body must be JSON (Content-Type: application/json)",
                "content_type",
            )
        return client_metadata(parse_body(request.body))

    @staticmethod
    def _create(metadata: ClientMetadata, gate: ClientRegistration.Gate, registered_from: str) -> tuple[Any, str]:
        """DOT builds and validates the Application; we store it with its registration record, in one transaction."""
        kwargs, error = registration_application_kwargs(
            {
                "redirect_uris": list(metadata.redirect_uris),
                "client_name": metadata.client_name,
                "grant_types": list(GRANT_TYPES),
                "token_endpoint_auth_method": metadata.token_endpoint_auth_method,
            }
        )
        if error is not None:  # not expected: the metadata was validated already
            raise RegistrationError("invalid_client_metadata", "The client metadata is invalid", "dot_refused")
        application = Application(user=None, registration_source=Application.RegistrationSource.DCR, **kwargs)
        secret = application.client_secret if not metadata.public else ""  # plaintext until save() hashes it
        try:
            application.full_clean()
        except ValidationError as exc:
            code = "invalid_redirect_uri" if "redirect_uris" in getattr(exc, "message_dict", {}) else None
            raise RegistrationError(
                code or "invalid_client_metadata", validation_error_description(exc), code or "invalid_client_metadata"
            ) from None
        with transaction.atomic():
            application.save()
            ClientRegistration.objects.create(application=application, gate=gate, registered_from=registered_from)
        return application, secret


def registration_response(application: Any, metadata: ClientMetadata, secret: str) -> dict[str, Any]:
    """RFC 7591 §3.2.1; a confidential client's secret is shown this once and never expires."""
    body: dict[str, Any] = {
        "client_id": application.client_id,
        "client_id_issued_at": int(application.created.timestamp()),
        "client_name": application.name,
        "redirect_uris": list(metadata.redirect_uris),
        "grant_types": list(GRANT_TYPES),
        "response_types": list(RESPONSE_TYPES),
        "token_endpoint_auth_method": metadata.token_endpoint_auth_method,
    }
    if secret:
        body["client_secret"] = secret
        body["client_secret_expires_at"] = 0
    return body


def origin_listed(origin: str | None) -> bool:
    if not origin:
        return False
    try:
        return canonical_resource(origin) in settings.MUSTER_CONFIG.allowed_origins
    except ValueError:
        return False


def with_cors(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """Browser clients (listed in `allowedOrigins`) may read the answer, errors included."""
    origin = request.headers.get("Origin")
    if origin_listed(origin):
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Expose-Headers"] = "Retry-After, WWW-Authenticate"
    patch_vary_headers(response, ["Origin"])
    return response
