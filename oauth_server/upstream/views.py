"""/oauth/login and /oauth/callback for an upstream provider: mozilla-django-oidc's views with our failure handling."""

from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView
from oauth2_provider.compat import login_not_required
from oauth2_provider.http import OAuth2ResponseRedirect
from oauth2_provider.oauth2_backends import get_oauthlib_core
from oauthlib.oauth2 import OAuth2Error

from infra import audit
from infra.errors import error_page
from oauth_server.upstream.backend import FAILURE_ATTRIBUTE
from oauth_server.upstream.provider import configured
from oauth_server.upstream.settings import provider_setting

NEXT_KEY = "oidc_login_next"
STATES_KEY = "oidc_states"
AUTHORIZE_PATH = "/oauth/authorize"


@method_decorator(login_not_required, name="dispatch")
class UpstreamLoginView(OIDCAuthenticationRequestView):
    """Sends the browser to the provider with state, nonce and PKCE S256; `next` is the pending authorize request."""

    get_settings = staticmethod(provider_setting)

    def get_extra_params(self, request: HttpRequest) -> dict[str, str]:
        provider = configured()
        assert provider is not None  # routed here only for an upstream provider
        return {"redirect_uri": provider.callback_url, **provider.extra_params}


@method_decorator(login_not_required, name="dispatch")
class UpstreamCallbackView(OIDCAuthenticationCallbackView):
    """The provider's answer. A failure shows a clear page; a known pending client gets `access_denied`."""

    get_settings = staticmethod(provider_setting)

    def get(self, request: HttpRequest) -> HttpResponse:
        if configured() is None:
            raise Http404("no upstream identity provider is configured")
        state = request.GET.get("state", "")
        # Only a state we issued proves this answer belongs to this browser's pending authorization.
        self.state_was_pending = bool(state) and state in request.session.get(STATES_KEY, {})
        # Read now: a provider error flushes the session.
        self.pending_next = request.session.get(NEXT_KEY) if self.state_was_pending else None
        if not self.state_was_pending:
            return self.login_failure()
        return super().get(request)

    def login_success(self) -> HttpResponse:
        response = super().login_success()
        self.request.session.pop(NEXT_KEY, None)  # the pending authorization continues; it cannot fail any more here
        return response

    def login_failure(self) -> HttpResponse:
        error, description, status = self._failure()
        self.request.session.pop(NEXT_KEY, None)
        if self.pending_next and (redirect := self._deny_pending(self.pending_next, description)):
            return redirect
        return error_page(self.request, error, description, status)

    def _failure(self) -> tuple[str, str, int]:
        """The error, its description and status; the backend audits its own failures, this the others."""
        if not self.state_was_pending:
            audit.record("upstream_sign_in_failed", "failure", reason="unknown_state")
            return (
                "invalid_request",
                "This sign-in answer is unknown or was already used. Start again from your application.",
                400,
            )
        provider_error = self.request.GET.get("error")
        if provider_error:
            audit.record("upstream_sign_in_failed", "failure", reason="provider_error")
            shown = "".join(char for char in provider_error[:64] if char.isalnum() or char in "_-.")
            return "access_denied", f"The identity provider did not sign you in ({shown}).", 400
        reason = getattr(self.request, FAILURE_ATTRIBUTE, None)
        if reason is None:
            audit.record("upstream_sign_in_failed", "failure", reason="inactive_user")
            return "access_denied", "This account cannot sign in here.", 403
        return "server_error", f"Sign-in at the identity provider failed: {reason[1]}", 502

    def _deny_pending(self, next_url: str, description: str) -> HttpResponse | None:
        """The pending authorize request, re-validated, answered `access_denied` with its state and `iss`."""
        parts = urlsplit(next_url)
        if parts.path != AUTHORIZE_PATH or parts.netloc:
            return None
        try:
            _, credentials = get_oauthlib_core().server.validate_authorization_request(
                settings.MUSTER_CONFIG.base_url + AUTHORIZE_PATH + "?" + parts.query
            )
        except OAuth2Error:
            return None
        answer: dict[str, Any] = {"error": "access_denied", "error_description": description}
        if credentials.get("state"):
            answer["state"] = credentials["state"]
        answer["iss"] = settings.MUSTER_CONFIG.issuer
        redirect_uri = credentials["redirect_uri"]
        separator = "&" if urlsplit(redirect_uri).query else "?"
        application = credentials["request"].client
        return OAuth2ResponseRedirect(redirect_uri + separator + urlencode(answer), application.get_allowed_schemes())
