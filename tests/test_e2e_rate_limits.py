"""Rate limits against the real server: per-IP buckets, their sharing across workers, proxies, and failing open."""

import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.servers.site import Site
from tests.support.services import delete_redis_keys, require_redis

pytestmark = [pytest.mark.e2e]

# A slow refill makes "the first ~burst pass" exact enough to assert; the burst stays muster's 100.
SLOW_REFILL = {"MUSTER_RATE_LIMIT_IP_RATE": "2"}


def client_from(source: str) -> httpx.Client:
    """An HTTP client whose connections come from `source` (any 127.x address is this machine)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=10)


def burst(
    site: Site, count: int, source: str = "127.0.0.1", forwarded_for: Callable[[int], str] | None = None
) -> list[httpx.Response]:
    """`count` token requests sent at once from `source`, each on its own connection (so any worker may answer)."""

    def one(index: int) -> httpx.Response:
        headers = {"X-Forwarded-For": forwarded_for(index)} if forwarded_for else {}
        with client_from(source) as http:
            return http.post(f"{site.base_url}/oauth/token", headers=headers)

    with ThreadPoolExecutor(max_workers=10) as pool:
        return list(pool.map(one, range(count)))


def passed(answers: list[httpx.Response]) -> int:
    return sum(answer.status_code != 429 for answer in answers)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with Site(tmp_path, extra_env=SLOW_REFILL) as running:
        yield running


def test_a_burst_from_one_ip_is_cut_at_the_bucket_and_other_ips_are_unaffected(site: Site) -> None:
    answers = burst(site, 150)

    assert 100 <= passed(answers) <= 120
    refused = [answer for answer in answers if answer.status_code == 429]
    assert refused, "nothing was refused"
    for answer in refused:
        assert answer.json()["error"] == "rate_limit_exceeded"
        assert int(answer.headers["retry-after"]) >= 1
    # another address has its own bucket
    assert passed(burst(site, 5, source="127.0.0.2")) == 5
    # and after Retry-After the first address is served again
    # (inherent: the bucket refills on the server's clock, in another process, so real time has to pass)
    time.sleep(int(refused[-1].headers["retry-after"]))
    assert passed(burst(site, 1)) == 1


def test_x_forwarded_for_is_believed_only_from_trusted_proxies(tmp_path: Path) -> None:
    env = {**SLOW_REFILL, "MUSTER_TRUSTED_PROXY_CIDRS": "127.0.0.1/32"}
    with Site(tmp_path, extra_env=env) as site:
        # Through the trusted proxy, one forwarded client empties its bucket, another still has its own
        assert passed(burst(site, 130, forwarded_for=lambda _: "203.0.113.1")) <= 115
        assert passed(burst(site, 5, forwarded_for=lambda _: "203.0.113.2")) == 5
        # From an untrusted peer, spoofed headers change nothing: every request spends the peer's own bucket
        spoofed = burst(site, 130, source="127.0.0.3", forwarded_for=lambda index: f"198.51.100.{index}")
        assert passed(spoofed) <= 115


@pytest.mark.redis
def test_two_workers_sharing_redis_share_one_limit(tmp_path: Path) -> None:
    redis_url = require_redis()
    server = Site(tmp_path, redis_url=redis_url, workers=2, extra_env=SLOW_REFILL)
    try:
        with server:
            answers = burst(server, 150)
    finally:
        delete_redis_keys(redis_url, server.key_prefix)

    assert 100 <= passed(answers) <= 120, "the limit was doubled across the workers"


@pytest.mark.redis
def test_with_redis_stopped_requests_are_still_served_and_the_warning_comes_once(
    tmp_path: Path, own_redis: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, redis_process = own_redis
    with Site(tmp_path / "site", redis_url=url) as site, httpx.Client(timeout=10) as http:
        metadata = f"{site.base_url}/.well-known/oauth-authorization-server"
        assert http.get(metadata).status_code == 200

        redis_process.kill()
        redis_process.wait()
        answers = [http.get(metadata) for _ in range(10)]

        log = site.log_path.read_text()
    assert [answer.status_code for answer in answers] == [200] * 10
    assert log.count("Rate limiting is off while its store fails") == 1
