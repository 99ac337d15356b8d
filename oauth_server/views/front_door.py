"""GET /: the front door — what this server is, the MCP URL to paste into a client, and how each client connects."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_safe

DEFAULT_SHORT_NAME = "muster"
CURSOR_SCHEME = "cursor"  # Cursor's redirect URI is cursor://anysphere.cursor-mcp/oauth/callback


def short_name() -> str:
    """The name the snippets give this server in a client's configuration: `serverName` as a slug, or muster."""
    return slugify(settings.MUSTER_CONFIG.server_name) or DEFAULT_SHORT_NAME


@require_safe
def front_door(request: HttpRequest) -> HttpResponse:
    config = settings.MUSTER_CONFIG
    context = {
        "mcp_url": config.mcp_resource,
        "short_name": short_name(),
        "server_metadata_url": config.base_url + reverse("oauth2_provider:oauth-server-metadata"),
        "resource_metadata_url": config.base_url + reverse("oauth2_provider:oauth-resource-metadata-mcp"),
        "loopback_only": config.base_url_is_loopback,
        "cursor_scheme_allowed": CURSOR_SCHEME
        in (*config.trusted_public_registration_schemes, *config.allowed_redirect_schemes),
    }
    return render(request, "oauth_server/front_door.html", context)
