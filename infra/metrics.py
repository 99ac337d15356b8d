"""Prometheus metrics of the site, correct with several uvicorn workers (prometheus_client multiprocess mode).

Every process writes its own counters and histograms to files in PROMETHEUS_MULTIPROC_DIR; /metrics
(`oauth_server.views.metrics`) adds up the files of all processes. When the variable is unset it is set to
`<VAR_DIR>/prometheus`. prometheus_client picks its storage from that variable when it is first imported, so
it is imported here only, on the first recording or scrape (tests may still set the variable before that).
Only counters and histograms: their files stay right after a worker exits, so no live gauges and no cleanup
per dead worker. The directory must be emptied whenever the whole service (re)starts (`make run` does it),
or a new process whose pid matches an old file would continue that file's counts.

Label values stay few: `endpoint` is a URL name (never a raw path), the others are names chosen in code.
"""

import functools
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

log = logging.getLogger("muster.metrics")
ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"
# Time spent answering a request, from a cache hit on the health check to a slow token grant.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A /mcp bearer validation: microseconds from the local cache, milliseconds from Redis or the database.
VALIDATION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
TOKEN_SOURCES = ("local", "redis", "database")

# Audit events that also feed a named counter: event -> (counter, its label value or None).
_NAMED_EVENTS: dict[str, tuple[str, str | None]] = {
    "token_issued": ("tokens_issued", None),
    "token_refreshed": ("tokens_refreshed", None),
    "token_revoked": ("tokens_revoked", None),
    "family_revoked": ("families_revoked", None),
    "refresh_token_reuse_detected": ("reuse_detected", "refresh"),
    "code_reuse_detected": ("reuse_detected", "code"),
    "cimd_fetched": ("cimd_fetches", "fetched"),
    "cimd_blocked": ("cimd_fetches", "blocked"),
    "cimd_failed": ("cimd_fetches", "failed"),
    "cimd_id_mismatch": ("cimd_fetches", "id_mismatch"),
}


@dataclass(frozen=True)
class _Metrics:
    directory: Path
    http_requests: Any
    http_duration: Any
    events: Any
    tokens_issued: Any
    tokens_refreshed: Any
    tokens_revoked: Any
    families_revoked: Any
    reuse_detected: Any
    cimd_fetches: Any
    rate_limited: Any
    rate_limit_backend_errors: Any
    token_validations: Any
    token_validation_seconds: Any


_lock = threading.Lock()
_metrics: _Metrics | None = None
_failure_logged = False
P = ParamSpec("P")


def _never_raises(record: Callable[P, None]) -> Callable[P, None]:
    """A metric that cannot be written (directory missing or full) is logged once, never fails the request."""

    @functools.wraps(record)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        global _failure_logged
        try:
            record(*args, **kwargs)
        except Exception:
            if not _failure_logged:
                _failure_logged = True
                log.exception("metrics could not be recorded (%s=%s)", ENV_VAR, os.environ.get(ENV_VAR))

    return wrapper


def multiprocess_dir() -> Path:
    """The directory all processes write to: PROMETHEUS_MULTIPROC_DIR, else `<VAR_DIR>/prometheus`; created."""
    value = os.environ.get(ENV_VAR)
    if not value:
        try:
            var_dir = Path(settings.VAR_DIR)
        except (ImproperlyConfigured, AttributeError):
            var_dir = Path(__file__).resolve().parent.parent / "var"
        value = str(var_dir / "prometheus")
        os.environ[ENV_VAR] = value  # before prometheus_client's first import, and for any child process
    path = Path(value)
    path.mkdir(parents=True, exist_ok=True)
    return path


def directory_in_use() -> Path | None:
    """The directory this process writes to; None until its first recording or scrape."""
    return None if _metrics is None else _metrics.directory


def _get() -> _Metrics:
    global _metrics
    if _metrics is not None:
        return _metrics
    with _lock:
        if _metrics is None:
            directory = multiprocess_dir()
            from prometheus_client import Counter, Histogram, values

            if not values.ValueClass._multiprocess:  # imported elsewhere before the variable was set
                values.ValueClass = values.MultiProcessValue()  # read by each metric as it is built

            def counter(name: str, documentation: str, labels: tuple[str, ...] = ()) -> Any:
                return Counter(name, documentation, labels, registry=None)  # /metrics reads the files

            def histogram(
                name: str, documentation: str, buckets: tuple[float, ...], labels: tuple[str, ...] = ()
            ) -> Any:
                return Histogram(name, documentation, labels, registry=None, buckets=buckets)

            _metrics = _Metrics(
                directory=directory,
                http_requests=counter(
                    "muster_http_requests", "HTTP requests answered, by URL name and status.", ("endpoint", "status")
                ),
                http_duration=histogram(
                    "muster_http_request_duration_seconds",
                    "Time to answer an HTTP request, by URL name.",
                    HTTP_BUCKETS,
                    ("endpoint",),
                ),
                events=counter("muster_events", "Audit events, by event and outcome.", ("event", "outcome")),
                tokens_issued=counter("muster_tokens_issued", "token_issued events: grants that issued tokens."),
                tokens_refreshed=counter("muster_tokens_refreshed", "token_refreshed events: refresh grants."),
                tokens_revoked=counter("muster_tokens_revoked", "token_revoked events: tokens revoked one by one."),
                families_revoked=counter(
                    "muster_token_families_revoked", "family_revoked events: whole refresh-token families revoked."
                ),
                reuse_detected=counter(
                    "muster_token_reuse_detected", "Reuse of a spent refresh token or code, by kind.", ("kind",)
                ),
                cimd_fetches=counter(
                    "muster_cimd_fetches", "Client ID Metadata Document fetches, by outcome.", ("outcome",)
                ),
                rate_limited=counter(
                    "muster_rate_limited", "Requests refused by a rate limiter, by limiter.", ("limiter",)
                ),
                rate_limit_backend_errors=counter(
                    "muster_rate_limit_backend_errors", "Failures of the shared limiter store (requests let through)."
                ),
                token_validations=counter(
                    "muster_mcp_token_validations",
                    "/mcp bearer validations, by where the answer came from (local, redis, database).",
                    ("source",),
                ),
                token_validation_seconds=histogram(
                    "muster_mcp_token_validation_seconds", "Time to validate a /mcp bearer token.", VALIDATION_BUCKETS
                ),
            )
    return _metrics


def exposition() -> tuple[bytes, str]:
    """The sum over all processes' files, in the Prometheus text format, and its content type."""
    directory = _get().directory
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return generate_latest(registry), CONTENT_TYPE_LATEST


@_never_raises
def http_request(endpoint: str, status: int, seconds: float) -> None:
    """One answered request: `endpoint` is the URL name (or "mcp"), with its status and duration."""
    metrics = _get()
    metrics.http_requests.labels(endpoint=endpoint, status=str(int(status))).inc()
    metrics.http_duration.labels(endpoint=endpoint).observe(max(seconds, 0.0))


@_never_raises
def observe_event(event: str, outcome: str) -> None:
    """One audit event (tokens issued/refreshed/revoked, reuse detections, CIMD outcomes, ...).

    Every event counts in muster_events_total{event,outcome}; the events in _NAMED_EVENTS also count,
    whatever their outcome, in their named counter.
    """
    metrics = _get()
    metrics.events.labels(event=event, outcome=outcome).inc()
    named = _NAMED_EVENTS.get(event)
    if named is not None:
        counter, label = named
        metric = getattr(metrics, counter)
        (metric if label is None else metric.labels(label)).inc()


@_never_raises
def rate_limited(limiter: str) -> None:
    """A request refused by the named limiter."""
    _get().rate_limited.labels(limiter=limiter).inc()


@_never_raises
def rate_limit_backend_error() -> None:
    """The shared limiter store (Redis/Valkey) failed; the request was let through."""
    _get().rate_limit_backend_errors.inc()


@_never_raises
def token_validation(source: str, seconds: float) -> None:
    """A /mcp bearer validation answered from `source` ("local", "redis" or "database") in `seconds`."""
    metrics = _get()
    metrics.token_validations.labels(source=source if source in TOKEN_SOURCES else "other").inc()
    metrics.token_validation_seconds.observe(max(seconds, 0.0))
