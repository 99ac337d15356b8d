"""/account: the apps a signed-in user has connected, disconnecting one, and signing out everywhere."""

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST, require_safe
from oauth2_provider.models import RefreshToken

from infra.errors import error_page
from oauth_server.families import USER_SIGN_OUT, revoke_families_of, revoke_family
from oauth_server.models import TokenFamily

DISCONNECTED = "user-disconnected"


class SeeOther(HttpResponseRedirect):
    """303: after a form POST, the browser GETs the next page (a reload does not post again)."""

    status_code = 303


View = Callable[[HttpRequest], HttpResponse]


def signed_in(view: View) -> View:
    """A stranger goes to sign in and comes back to the account page (never to a form's POST address)."""

    @wraps(view)
    def checked(request: HttpRequest) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(reverse("account"))
        return view(request)

    return checked


def connected_families(user: Any) -> list[TokenFamily]:
    """The user's live token families, newest activity first, each with the hosts its client returns to."""
    families = list(
        TokenFamily.objects.filter(user=user)
        .heads()
        .filter(live_members__gt=0)
        .select_related("application")
        .order_by("-last_rotation")
    )
    for family in families:
        hosts = (urlsplit(uri).hostname or uri for uri in family.application.redirect_uris.split())
        family.redirect_hosts = list(dict.fromkeys(hosts))
    return families


@require_safe
@signed_in
def account(request: HttpRequest) -> HttpResponse:
    return render(request, "oauth_server/account.html", {"families": connected_families(request.user)})


@require_POST
@signed_in
def disconnect(request: HttpRequest) -> HttpResponse:
    """Revoke one family of the signed-in user; anyone else's, or one already ended, is a 404 and changes nothing."""
    back = reverse("account")
    try:
        family = UUID(request.POST.get("family", ""))
    except ValueError:
        return error_page(request, "invalid_request", _("The form names no connected app."), 400, back=back)
    live = RefreshToken.objects.filter(token_family=family, user=request.user, revoked__isnull=True)
    member = live.select_related("application").first()
    if member is None:
        return error_page(request, "not_found", _("You have no connected app like this."), 404, back=back)
    revoke_family(family, reason=DISCONNECTED)
    name = member.application.name or member.application.client_id
    messages.success(request, _("%(app)s is disconnected.") % {"app": name})
    return SeeOther(back)


@require_POST
@signed_in
def sign_out_everywhere(request: HttpRequest) -> HttpResponse:
    """Revoke every family of the signed-in user, then end this browser's session."""
    count = revoke_families_of(USER_SIGN_OUT, user_id=request.user.pk)
    logout(request)
    text = ngettext(
        "You are signed out everywhere: %(count)d app was disconnected.",
        "You are signed out everywhere: %(count)d apps were disconnected.",
        count,
    )
    messages.success(request, text % {"count": count})
    return SeeOther(reverse("logout"))
