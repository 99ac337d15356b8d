"""GET /metrics: Prometheus metrics of all workers, for loopback and the networks in metrics.allowedCIDRs only."""

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.views.decorators.csrf import csrf_exempt

from infra import metrics
from infra.errors import oauth_error

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def may_read_metrics(remote_addr: str, allowed_cidrs: tuple[str, ...]) -> bool:
    """True for a loopback address or one inside `allowed_cidrs`; anything unparsable is refused."""
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback, ::ffff:10.0.0.1 is in 10.0.0.0/8
    return address.is_loopback or any(address in network for network in _networks(allowed_cidrs))


@csrf_exempt  # nothing changes here; a POST gets our 405, not a CSRF page
def metrics_view(request: HttpRequest) -> HttpResponse:
    # The connection's own address: X-Forwarded-For is never believed here.
    if not may_read_metrics(request.META.get("REMOTE_ADDR", ""), settings.MUSTER_CONFIG.metrics.allowed_cidrs):
        return oauth_error("forbidden", "Metrics are readable only from loopback and metrics.allowedCIDRs", 403)
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    body, content_type = metrics.exposition()
    return HttpResponse(body, content_type=content_type, headers={"Cache-Control": "no-store"})
