"""POST /oauth/revoke: RFC 7009 through DOT, with complete JSON error bodies."""

from typing import Any

from django.http import HttpRequest, HttpResponse
from oauth2_provider import views as dot_views

from infra.errors import completed_error
from oauth_server import throttle


class RevokeView(throttle.ConfidentialClientLimit, dot_views.RevokeTokenView):
    """200 for any token the client may not or cannot revoke; errors only for a bad request or client."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if limited := self.confidential_client_limited(request):
            return limited
        return completed_error(super().post(request, *args, **kwargs))
