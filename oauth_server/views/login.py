"""GET/POST /oauth/login: the local sign-in form (`provider: local`), or the redirect to the upstream provider."""

from typing import Any

from django.contrib.auth.views import LoginView as DjangoLoginView
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from oauth2_provider.compat import login_not_required

from oauth_server.upstream.provider import configured
from oauth_server.upstream.views import UpstreamLoginView


@method_decorator(login_not_required, name="dispatch")
class LoginView(DjangoLoginView):
    """Django's CSRF-protected form; `next` (validated by Django) returns to the pending authorize request."""

    template_name = "oauth_server/login.html"


_local = LoginView.as_view()
_upstream = UpstreamLoginView.as_view()


@login_not_required
def sign_in(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Where unauthenticated authorize requests go: the configured provider decides."""
    return (_local if configured() is None else _upstream)(request, *args, **kwargs)
