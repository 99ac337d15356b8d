"""Prometheus metrics: who may read /metrics, what is counted, and that several uvicorn workers add up."""

import atexit
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from infra import metrics
from infra.request_metrics import endpoint_name
from tests.servers.site import Site
from tests.support.flow import exchange, issue_code

# This process must not write into the project's var/prometheus (a running `make run` would report our counts).
# The variable is read on the first recording, after collection, so setting it here is early enough.
if not os.environ.get(metrics.ENV_VAR) and metrics.directory_in_use() is None:
    _directory = tempfile.mkdtemp(prefix="muster-prometheus-")
    os.environ[metrics.ENV_VAR] = _directory
    atexit.register(shutil.rmtree, _directory, ignore_errors=True)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, keyed by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


def scrape(client) -> str:
    answer = client.get("/metrics")
    assert answer.status_code == 200, answer.content
    return answer.content.decode()


def with_metrics_cidrs(settings, *cidrs: str) -> None:
    config = settings.MUSTER_CONFIG
    settings.MUSTER_CONFIG = replace(config, metrics=replace(config.metrics, allowed_cidrs=cidrs))


# --- who may read /metrics ---


def test_metrics_are_refused_to_a_remote_address(client) -> None:
    answer = client.get("/metrics", REMOTE_ADDR="10.1.2.3")
    assert answer.status_code == 403
    assert answer.json()["error"] == "forbidden"
    assert b"muster_" not in answer.content


def test_x_forwarded_for_does_not_make_a_remote_address_loopback(client) -> None:
    answer = client.get("/metrics", REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR="127.0.0.1")
    assert answer.status_code == 403


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_metrics_are_served_to_loopback_by_default(client, address: str) -> None:
    answer = client.get("/metrics", REMOTE_ADDR=address)
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/plain")
    assert answer["Cache-Control"] == "no-store"


def test_metrics_are_served_inside_allowed_cidrs_and_refused_outside(client, settings) -> None:
    with_metrics_cidrs(settings, "10.0.0.0/8", "2001:db8::/32")
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::ffff:10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="2001:db8::5").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.168.1.1").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="not-an-address").status_code == 403


def test_metrics_answer_only_get(client) -> None:
    answer = client.post("/metrics")
    assert answer.status_code == 405
    assert answer["Allow"] == "GET"


def test_other_methods_from_a_remote_address_are_still_forbidden(client) -> None:
    assert client.post("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403


# --- what is counted ---


@pytest.mark.django_db
def test_a_token_request_is_counted_by_url_name_and_status(client) -> None:
    before = scrape(client)
    answer = client.post("/oauth/token", {"grant_type": "authorization_code", "code": "nope", "client_id": "nobody"})
    after = scrape(client)
    status = str(answer.status_code)
    name, endpoint = "muster_http_requests_total", "oauth2_provider:token"
    assert (
        value(after, name, endpoint=endpoint, status=status)
        == value(before, name, endpoint=endpoint, status=status) + 1
    )
    histogram = "muster_http_request_duration_seconds_count"
    assert value(after, histogram, endpoint=endpoint) == value(before, histogram, endpoint=endpoint) + 1


@pytest.mark.django_db
def test_a_code_exchange_counts_a_200_and_a_token_issued(client, user, public_client) -> None:
    client.force_login(user)
    code, verifier, _ = issue_code(client, public_client.client_id)
    before = scrape(client)
    assert exchange(client, public_client.client_id, code, verifier).status_code == 200
    after = scrape(client)
    ok = {"endpoint": "oauth2_provider:token", "status": "200"}
    assert value(after, "muster_http_requests_total", **ok) == value(before, "muster_http_requests_total", **ok) + 1
    assert value(after, "muster_tokens_issued_total") == value(before, "muster_tokens_issued_total") + 1


@pytest.mark.django_db
def test_unknown_paths_and_admin_pages_are_labelled_without_their_path(client) -> None:
    before = scrape(client)
    assert client.get("/no/such/page-4711").status_code == 404
    client.get("/admin/login/")
    after = scrape(client)
    name = "muster_http_requests_total"
    lost = {"endpoint": "unmatched", "status": "404"}
    assert value(after, name, **lost) == value(before, name, **lost) + 1
    admin = {"endpoint": "admin", "status": "200"}
    assert value(after, name, **admin) == value(before, name, **admin) + 1
    assert "4711" not in after and "/admin" not in after


@pytest.mark.parametrize(
    ("path", "endpoint"),
    [
        ("/oauth/token", "oauth2_provider:token"),
        ("/health", "health"),
        ("/admin/auth/user/42/change/", "admin"),
        ("/static/admin/css/base.css", "static"),
        ("/nothing/here", "unmatched"),
    ],
)
def test_a_request_answered_before_url_resolution_still_gets_its_url_name(rf, path: str, endpoint: str) -> None:
    # A middleware (the rate limiter's 429, say) may answer before Django resolves the URL.
    assert endpoint_name(rf.get(path)) == endpoint


def test_an_audit_event_shows_in_metrics(client) -> None:
    before = scrape(client)
    metrics.observe_event("token_issued", "success")
    after = scrape(client)
    event = {"event": "token_issued", "outcome": "success"}
    assert value(after, "muster_events_total", **event) == value(before, "muster_events_total", **event) + 1
    assert value(after, "muster_tokens_issued_total") == value(before, "muster_tokens_issued_total") + 1


@pytest.mark.parametrize(
    ("event", "name", "labels"),
    [
        ("token_refreshed", "muster_tokens_refreshed_total", {}),
        ("token_revoked", "muster_tokens_revoked_total", {}),
        ("family_revoked", "muster_token_families_revoked_total", {}),
        ("refresh_token_reuse_detected", "muster_token_reuse_detected_total", {"kind": "refresh"}),
        ("code_reuse_detected", "muster_token_reuse_detected_total", {"kind": "code"}),
        ("cimd_fetched", "muster_cimd_fetches_total", {"outcome": "fetched"}),
        ("cimd_blocked", "muster_cimd_fetches_total", {"outcome": "blocked"}),
        ("cimd_failed", "muster_cimd_fetches_total", {"outcome": "failed"}),
        ("cimd_id_mismatch", "muster_cimd_fetches_total", {"outcome": "id_mismatch"}),
    ],
)
def test_audit_events_feed_their_named_counters(client, event: str, name: str, labels: dict[str, str]) -> None:
    before = scrape(client)
    metrics.observe_event(event, "failure")
    after = scrape(client)
    assert value(after, name, **labels) == value(before, name, **labels) + 1
    events = {"event": event, "outcome": "failure"}
    assert value(after, "muster_events_total", **events) == value(before, "muster_events_total", **events) + 1


def test_rate_limits_and_token_validations_are_counted(client) -> None:
    before = scrape(client)
    metrics.rate_limited("token")
    metrics.rate_limit_backend_error()
    for source in ("local", "local", "redis", "database"):
        metrics.token_validation(source, 0.0004)
    after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("muster_rate_limited_total", limiter="token") == 1
    assert grew("muster_rate_limit_backend_errors_total") == 1
    assert grew("muster_mcp_token_validations_total", source="local") == 2
    assert grew("muster_mcp_token_validations_total", source="redis") == 1
    assert grew("muster_mcp_token_validations_total", source="database") == 1
    assert grew("muster_mcp_token_validation_seconds_count") == 4
    assert grew("muster_mcp_token_validation_seconds_bucket", le="0.0005") == 4


def test_metrics_are_written_to_the_multiprocess_directory(client) -> None:
    scrape(client)
    directory = metrics.directory_in_use()
    assert directory is not None and str(directory) == os.environ[metrics.ENV_VAR]
    assert list(directory.glob(f"counter_{os.getpid()}.db"))


# --- several uvicorn workers ---


def health_count_by_process(directory: Path) -> dict[str, float]:
    """The /health requests each process wrote to its own counter file."""
    counts = {}
    for path in directory.glob("counter_*.db"):
        for family in MultiProcessCollector.merge([str(path)]):
            for sample in family.samples:
                if sample.name == "muster_http_requests_total" and sample.labels.get("endpoint") == "health":
                    counts[path.stem] = counts.get(path.stem, 0.0) + sample.value
    return counts


@pytest.mark.e2e
def test_requests_answered_by_two_uvicorn_workers_all_count(tmp_path: Path) -> None:
    directory = tmp_path / "prom"
    with Site(tmp_path, workers=2, extra_env={metrics.ENV_VAR: str(directory)}) as site:

        def health_total() -> float:
            answer = httpx.get(f"{site.base_url}/metrics", timeout=10.0)
            assert answer.status_code == 200, answer.text
            return value(answer.text, "muster_http_requests_total", endpoint="health", status="200")

        def fresh_connection_health(_: int) -> int:
            return httpx.get(f"{site.base_url}/health", headers={"Connection": "close"}, timeout=10.0).status_code

        before = health_total()
        sent = 0
        with ThreadPoolExecutor(max_workers=8) as pool:
            # 40 requests; more only in the unlikely case the kernel gave every connection to one worker.
            while sent == 0 or (len(health_count_by_process(directory)) < 2 and sent < 400):
                assert set(pool.map(fresh_connection_health, range(40))) == {200}
                sent += 40
        after = health_total()
        by_process = health_count_by_process(directory)
        histogram = httpx.get(f"{site.base_url}/metrics", timeout=10.0).text

    assert len(by_process) >= 2, f"only one worker answered: {by_process}"
    assert after == before + sent, (before, sent, after, by_process)
    assert sum(by_process.values()) == after
    assert value(histogram, "muster_http_request_duration_seconds_count", endpoint="health") == after
