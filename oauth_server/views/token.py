"""POST /oauth/token: DOT's token endpoint, serialised per code or refresh token, with the race grace."""

import hashlib
from typing import Any

from django.http import HttpRequest, HttpResponse
from oauth2_provider import views as dot_views

from infra.deadlines import deadline_in
from infra.errors import completed_error, oauth_error
from infra.locks import LockTimeout, LockUnavailable, cache_lock
from infra.outages import UNAVAILABLE
from oauth_server import throttle
from oauth_server.clients.authentication import conflicting_client_ids
from oauth_server.extensions.refresh_grace import RefreshGrace

GRANT_SECRET_FIELD = {"authorization_code": "code", "refresh_token": "refresh_token"}
GRANT_LOCK_SECONDS = 15
# Shorter than the lock: a request still working when its lock could expire (and a duplicate take it) has already
# given up, so its late answer never commits a rotation nor revokes a family (oauth_server.validators checks it).
REQUEST_DEADLINE_SECONDS = 10
LOCK_WAIT_SECONDS = 5


class TokenView(throttle.ConfidentialClientLimit, RefreshGrace, dot_views.TokenView):
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
        lock_name = "grant:" + hashlib.sha256(grant_secret.encode()).hexdigest()
        try:
            with (
                deadline_in(REQUEST_DEADLINE_SECONDS),
                cache_lock(lock_name, ttl_seconds=GRANT_LOCK_SECONDS, wait_seconds=LOCK_WAIT_SECONDS),
            ):
                if grant_type == "refresh_token":
                    return self.refresh_with_grace(request, grant_secret)
                return self.authorization_flow_token_response(request)
        except LockUnavailable:  # Redis is down: the outage's answer, as every endpoint gives it
            return UNAVAILABLE.django_response()
        except LockTimeout:
            return oauth_error(
                "temporarily_unavailable",
                "Another request is using this grant; retry",
                503,
                {"Retry-After": "1"},
            )
