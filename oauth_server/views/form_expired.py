"""The page a person sees when a form fails Django's CSRF check (an old tab, cookies cleared, another site)."""

from django.http import HttpRequest, HttpResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _

from infra.errors import error_page


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """403 and nothing changed; "Go back" returns to the page the form was on when that page is ours."""
    came_from = request.headers.get("Referer", "")
    ours = url_has_allowed_host_and_scheme(came_from, {request.get_host()}, require_https=request.is_secure())
    description = _("This form has expired or did not come from this site. Reload the page and try again.")
    return error_page(request, "forbidden", description, 403, back=came_from if ours else "/")
