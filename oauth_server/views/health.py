"""GET /health: liveness for load balancers and orchestrators; "degraded" while OIDC discovery is pending."""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from oauth_server.upstream import discovery


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    if not discovery.ready():
        return JsonResponse({"status": "degraded", "reason": "oidc-discovery-pending"})
    return JsonResponse({"status": "ok"})
