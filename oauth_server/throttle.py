"""Rate limits on the OAuth endpoints: per client IP on every one, per confidential client on token and revoke."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from infra import audit, errors, ratelimit
from infra.client_ip import bucket_key
from oauth_server.clients.authentication import ClaimedClient, claimed_client_id

LIMITED_PATHS = ("/oauth/", "/.well-known/", "/user-tokens", "/account")


def too_many_requests(decision: ratelimit.Decision) -> JsonResponse:
    """429 with the whole seconds until a request would pass."""
    return errors.too_many_requests(decision.retry_after).django_response()


def refused(limiter: str, decision: ratelimit.Decision, **identity: object) -> JsonResponse:
    audit.record("rate_limit_exceeded", "failure", limiter=limiter, **identity)
    return too_many_requests(decision)


class ConfidentialClientLimit(ClaimedClient):
    """For DOT views: authenticated confidential clients share one bucket per client, whoever their users are."""

    def confidential_client_limited(self, request: HttpRequest) -> HttpResponse | None:
        if not self.confidential_client_authenticated(request):
            return None  # public, unknown, or not authenticated (DOT answers): strangers cannot spend the bucket
        client_id = claimed_client_id(request) or ""
        decision = ratelimit.per_user().take(f"client:{client_id}")
        return None if decision.allowed else refused("client", decision, client_id=client_id)


class PerIpRateLimitMiddleware:
    """Every OAuth endpoint (and the discovery documents) first spends a token of the caller's IP bucket."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(LIMITED_PATHS):
            decision = ratelimit.per_ip().take(bucket_key(audit.client_ip.get() or ""))
            if not decision.allowed:
                return refused("ip", decision)
        return self.get_response(request)
