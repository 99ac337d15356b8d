"""URL map: muster's slash-less paths, never redirected (but /admin); DOT's views under its one namespace."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from mcp_gateway.user_tokens import user_tokens
from oauth_server import server_errors
from oauth_server.upstream.views import UpstreamCallbackView
from oauth_server.views import account
from oauth_server.views.authorize import ConsentView
from oauth_server.views.favicon import favicon
from oauth_server.views.front_door import front_door
from oauth_server.views.health import health, ready
from oauth_server.views.login import sign_in
from oauth_server.views.metadata import ProtectedResourceMetadataView, ServerMetadataView
from oauth_server.views.metrics import metrics_view
from oauth_server.views.register import RegisterView
from oauth_server.views.revoke import RevokeView
from oauth_server.views.sign_out import SignOutView
from oauth_server.views.token import TokenView

# DOT reverses "oauth2_provider:<name>" for its metadata, so every DOT view sits in this one namespace.
oauth2_provider_patterns = (
    [
        path(
            ".well-known/oauth-authorization-server",
            ServerMetadataView.as_view(),
            name="oauth-server-metadata",
        ),
        path(".well-known/openid-configuration", ServerMetadataView.as_view(), name="openid-configuration"),
        path(
            ".well-known/oauth-protected-resource",
            ProtectedResourceMetadataView.as_view(),
            name="oauth-resource-metadata",
        ),
        path(
            ".well-known/oauth-protected-resource/mcp",
            ProtectedResourceMetadataView.as_view(),
            name="oauth-resource-metadata-mcp",
        ),
        path("oauth/authorize", ConsentView.as_view(), name="authorize"),
        path("oauth/token", TokenView.as_view(), name="token"),
        path("oauth/revoke", RevokeView.as_view(), name="revoke-token"),
        # RFC 7591 only: DOT's RFC 7592 management view (dcr-register-management) is deliberately not mounted.
        path("oauth/register", RegisterView.as_view(), name="dcr-register"),
    ],
    "oauth2_provider",
)

handler500 = server_errors.server_error

urlpatterns = [
    path("", front_door, name="front-door"),
    path("", include(oauth2_provider_patterns)),
    path("oauth/login", sign_in, name="login"),
    path("oauth/logout", SignOutView.as_view(), name="logout"),
    path("account", account.account, name="account"),
    path("account/disconnect", account.disconnect, name="account-disconnect"),
    path("account/sign-out-everywhere", account.sign_out_everywhere, name="account-sign-out-everywhere"),
    path("favicon.ico", favicon, name="favicon"),
    # mozilla-django-oidc reverses this name for the redirect_uri it sends to the provider.
    path("oauth/callback", UpstreamCallbackView.as_view(), name="oidc_authentication_callback"),
    path("health", health, name="health"),
    path("health/ready", ready, name="health-ready"),
    path("user-tokens", user_tokens, name="user-tokens"),
    path("metrics", metrics_view, name="metrics"),
    path("admin", RedirectView.as_view(url="/admin/"), name="admin-redirect"),
    path("admin/", admin.site.urls),
]
