"""The /mcp endpoint as a stack of small ASGI layers, outermost first; each is usable alone and for other routes."""

from collections.abc import Callable, Sequence
from functools import reduce

from infra.asgi import ASGIApp
from mcp_gateway import targets
from mcp_gateway.stack.authenticated_signal import AuthenticatedSignal
from mcp_gateway.stack.authentication import BearerAuthentication
from mcp_gateway.stack.context import RequestContext
from mcp_gateway.stack.nosniff import Nosniff
from mcp_gateway.stack.origin import OriginCheck
from mcp_gateway.stack.rate_limit import per_ip, per_user
from mcp_gateway.stack.request_body import RequestBody
from mcp_gateway.stack.scopes import RequireScopes
from mcp_gateway.stack.session_binding import SessionBinding

Layer = Callable[[ASGIApp], ASGIApp]


def compose(layers: Sequence[Layer], app: ASGIApp) -> ASGIApp:
    """`layers[0]` wraps `layers[1]` ... wraps `app`."""
    return reduce(lambda inner, layer: layer(inner), reversed(layers), app)


def mcp_endpoint(authentication: Layer = BearerAuthentication) -> ASGIApp:
    """What Channels routes /mcp to: every check in order, then the MCP app or upstream server."""
    return compose(
        [
            RequestContext,  # audit context, metrics, a 500 for a crash
            RequestBody,  # the whole body (413 past 1 MiB); a client leaving mid-answer cancels the rest
            OriginCheck,  # preflights, foreign origins, CORS headers
            per_ip,  # 429 before any token is looked at
            authentication,  # the Identity, or 400/401 with the challenge
            RequireScopes,  # 403 insufficient_scope
            per_user,  # 429 per signed-in user
            SessionBinding,  # 404 for another user's Mcp-Session-Id; new sessions bound to the caller
            AuthenticatedSignal,  # onAuthenticated
            Nosniff,  # on the app's answers too
        ],
        targets.forward,
    )
