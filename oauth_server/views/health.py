"""GET /health: liveness ("degraded" while OIDC discovery is pending); GET /health/ready: can this worker serve."""

from django.core.cache import cache
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from infra.outages import OUTAGES
from oauth_server.upstream import discovery

READY_KEY = "health:ready"


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    if not discovery.ready():
        return JsonResponse({"status": "degraded", "reason": "oidc-discovery-pending"})
    return JsonResponse({"status": "ok"})


def database_state() -> str:
    """Whether a query round-trips ("ok"), waiting at most the pool timeout (POOL_TIMEOUT_SECONDS)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return "unavailable"
    return "ok"


def cache_state() -> str:
    """Whether the cache answers a read ("ok"), within the Redis socket timeouts (REDIS_TIMEOUT_SECONDS)."""
    try:
        cache.get(READY_KEY)
    except OUTAGES:
        return "unavailable"
    return "ok"


@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    """200 when this worker can serve: its database and cache answer; 503 naming what does not."""
    states = {"database": database_state(), "cache": cache_state()}
    if all(state == "ok" for state in states.values()):
        return JsonResponse({"status": "ready", **states})
    return JsonResponse({"status": "unavailable", **states}, status=503)
