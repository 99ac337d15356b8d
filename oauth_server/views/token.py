"""POST /oauth/token: DOT's token endpoint, serialised per code or refresh token, with the race grace."""

import hashlib
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from oauth2_provider import views as dot_views
from oauth2_provider.models import Application

from infra.errors import completed_error, oauth_error
from infra.locks import LockTimeout, cache_lock
from oauth_server import refresh_grace, throttle
from oauth_server.client_auth import claimed_client_id, conflicting_client_ids

GRANT_SECRET_FIELD = {"authorization_code": "code", "refresh_token": "refresh_token"}


class TokenView(throttle.ConfidentialClientLimit, dot_views.TokenView):
    """Grant failures say nothing about why; concurrent uses of one grant run one at a time.

    Every request goes through DOT's authorization-flow path: the device flow DOT would route
    separately does not exist here, so oauthlib answers it `unsupported_grant_type` like any other.
    """

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if conflicting_client_ids(request):
            return oauth_error("invalid_client", "client_id in the Authorization header does not match the form", 401)
        if limited := self.confidential_client_limited(request):
            return limited
        return completed_error(self._serialised(request))

    def _serialised(self, request: HttpRequest) -> HttpResponse:
        grant_type = request.POST.get("grant_type", "")
        grant_secret = request.POST.get(GRANT_SECRET_FIELD.get(grant_type, ""), "")
        if not grant_secret:
            return self.authorization_flow_token_response(request)
        try:
            with cache_lock("grant:" + hashlib.sha256(grant_secret.encode()).hexdigest()):
                if grant_type == "refresh_token":
                    return self._refresh(request, grant_secret)
                return self.authorization_flow_token_response(request)
        except LockTimeout:
            return oauth_error(
                "temporarily_unavailable",
                "Another request is using this grant; retry",
                503,
                {"Retry-After": "1"},
            )

    def _refresh(self, request: HttpRequest, old_token: str) -> HttpResponse:
        client_id = claimed_client_id(request) or ""
        if self._may_replay(request) and (body := refresh_grace.replay(old_token, client_id)):
            return self._token_response(body)
        response = self.authorization_flow_token_response(request)
        if response.status_code == 200:
            grace = int(settings.MUSTER_CONFIG.refresh_grace_period.total_seconds())
            refresh_grace.remember(old_token, client_id, response.content, grace)
        return response

    def _may_replay(self, request: HttpRequest) -> bool:
        """Public clients prove nothing beyond their id; confidential ones must authenticate first."""
        client_type = self.claimed_client_type(request)
        return client_type == Application.CLIENT_PUBLIC or self.confidential_client_authenticated(request)

    @staticmethod
    def _token_response(body: bytes) -> HttpResponse:
        return HttpResponse(
            body, content_type="application/json", headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
        )
