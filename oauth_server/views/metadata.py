"""Discovery documents: RFC 8414 (also as the OpenID configuration) and RFC 9728, cacheable for an hour."""

from typing import Any

from django.http import HttpRequest, HttpResponse
from oauth2_provider import views as dot_views

from infra.config import OFFLINE_ACCESS


class CacheableDiscovery:
    """Discovery documents change only with the configuration, so clients may keep them for an hour."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
        if response.status_code == 200:
            response["Cache-Control"] = "public, max-age=3600"
        return response


class ServerMetadataView(CacheableDiscovery, dot_views.OAuthServerMetadataView):
    """RFC 8414; the issuer and every endpoint come from `baseUrl`, never from the Host header."""


class ProtectedResourceMetadataView(CacheableDiscovery, dot_views.OAuthProtectedResourceMetadataView):
    """RFC 9728 for /mcp; `offline_access` is an authorization-server scope, never a resource scope."""

    def get_scopes_supported(self) -> list[str]:
        return [scope for scope in super().get_scopes_supported() if scope != OFFLINE_ACCESS]
