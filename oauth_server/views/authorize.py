"""GET/POST /oauth/authorize: validation before sign-in, the consent page, and `iss` on every answer (RFC 9207)."""

from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from oauth2_provider import views as dot_views
from oauth2_provider.exceptions import FatalClientError, OAuthToolkitError

from infra import audit
from infra.errors import describe, error_page
from oauth_server.clients.redirect_uris import all_loopback
from oauth_server.extensions.issuer import IssuerOnRedirects
from oauth_server.upstream import sessions as upstream_sessions


def host_of(uri: str) -> str:
    return urlsplit(uri).hostname or uri


class ConsentView(IssuerOnRedirects, dot_views.AuthorizationView):
    """DOT's authorization view with muster's rules and a consent page that shows who is asking."""

    template_name = "oauth_server/consent.html"
    http_method_names = ["get", "post"]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method is None or request.method.lower() not in self.http_method_names:
            return self.http_method_not_allowed(request, *args, **kwargs)
        if upstream_sessions.needs_sign_in(request):
            return self.handle_no_permission()
        return super().dispatch(request, *args, **kwargs)

    def handle_no_permission(self) -> HttpResponse:
        """A bad request fails at the first GET, before the user is sent to sign in."""
        try:
            self.validate_authorization_request(self.request)
        except OAuthToolkitError as error:
            return self.error_response(error, application=None)
        return redirect_to_login(self.request.get_full_path(), self.get_login_url(), self.get_redirect_field_name())

    def create_authorization_response(
        self, request: HttpRequest, scopes: str, credentials: dict[str, Any], allow: bool
    ) -> Any:
        """The code takes the provider's tokens from this sign-in (the validator stores them with it)."""
        pending = upstream_sessions.pending(request) if allow else None
        if pending is not None:
            credentials["muster_upstream"] = pending
        answer = super().create_authorization_response(request, scopes, credentials, allow)
        if pending is not None:
            request.session.pop(upstream_sessions.PENDING_KEY, None)  # one sign-in, one code, one family
        return answer

    def error_response(self, error: OAuthToolkitError, application: Any, **kwargs: Any) -> HttpResponse:
        """Unknown client or redirect URI: a 400 here, never a redirect. Everything else goes to the client."""
        oauthlib_error = error.oauthlib_error
        oauthlib_error.description = oauthlib_error.description or describe(oauthlib_error.error)
        if isinstance(error, FatalClientError) or not oauthlib_error.redirect_uri:
            return error_page(
                self.request, oauthlib_error.error, oauthlib_error.description, oauthlib_error.status_code
            )
        return super().error_response(error, application, **kwargs)

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        answered = parse_qs(urlsplit(response.get("Location", "")).query)
        if "code" in answered or answered.get("error") == ["access_denied"]:
            event = "code_issued" if "code" in answered else "consent_denied"
            audit.record(event, user_id=self.request.user.pk, client_id=form.cleaned_data["client_id"])
        return response

    def form_invalid(self, form: Any) -> HttpResponse:
        """A consent form that was tampered with or is incomplete changes nothing."""
        return error_page(self.request, "invalid_request", "The consent form is incomplete or was altered", 400)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        application = kwargs["application"]
        audit.record("authorization_started", user_id=self.request.user.pk, client_id=application.client_id)
        registered = application.redirect_uris.split()
        context.update(
            client_host=host_of(application.client_id) if "://" in application.client_id else "",
            redirect_host=host_of(kwargs["redirect_uri"]),
            localhost_only=all_loopback(registered),
        )
        return context
