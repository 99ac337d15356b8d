"""GET/POST /oauth/logout: end this browser's session (connected apps keep their tokens)."""

from typing import Any

from django.contrib.auth.views import LogoutView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.decorators import method_decorator
from oauth2_provider.compat import login_not_required


@method_decorator(login_not_required, name="dispatch")
class SignOutView(LogoutView):
    """Django's CSRF-protected logout; a GET asks first (a link must not sign anyone out), then says it is done.

    `next` (checked by Django to stay on this site) continues elsewhere, as the consent page's "Not you?" does.
    """

    http_method_names = ["get", "post", "options"]
    template_name = "oauth_server/signed_out.html"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated:
            return render(request, "oauth_server/sign_out.html")
        return super().get(request, *args, **kwargs)
