"""GET/POST /oauth/login: the local sign-in form (Django accounts) for `provider: local`."""

from django.contrib.auth.views import LoginView as DjangoLoginView
from django.utils.decorators import method_decorator
from oauth2_provider.compat import login_not_required


@method_decorator(login_not_required, name="dispatch")
class LoginView(DjangoLoginView):
    """Django's CSRF-protected form; `next` (validated by Django) returns to the pending authorize request."""

    template_name = "oauth_server/login.html"
