"""Prometheus metrics of the site (placeholder signatures; the metrics work fills them in)."""


def http_request(endpoint: str, status: int, seconds: float) -> None:
    """One answered request: `endpoint` is the URL name (or "mcp"), with its status and duration."""


def observe_event(event: str, outcome: str) -> None:
    """One audit event (tokens issued/refreshed/revoked, reuse detections, CIMD outcomes, ...)."""


def rate_limited(limiter: str) -> None:
    """A request refused by the named limiter."""


def rate_limit_backend_error() -> None:
    """The shared limiter store (Redis/Valkey) failed; the request was let through."""


def token_validation(source: str, seconds: float) -> None:
    """A /mcp bearer validation answered from `source` ("local", "redis" or "database") in `seconds`."""
