"""Rate limits against the real server: per-IP buckets, their sharing across workers, proxies, and failing open."""

import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.servers.site import Site
from tests.support.services import delete_redis_keys, require_redis

pytestmark = [pytest.mark.e2e]

# A slow refill (the slowest muster allows) keeps what refills during a burst small; the burst stays muster's 100.
IP_BURST, IP_RATE = 100, 1
SLOW_REFILL = {"MUSTER_RATE_LIMIT_IP_RATE": str(IP_RATE)}


def client_from(source: str) -> httpx.Client:
    """An HTTP client whose connections come from `source` (any 127.x address is this machine)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=10)


@dataclass(frozen=True)
class Burst:
    """The answers to a burst of requests, and how long it took from the first sent to the last answered."""

    answers: list[httpx.Response]
    seconds: float

    @property
    def passed(self) -> int:
        return sum(answer.status_code != 429 for answer in self.answers)

    @property
    def allowance(self) -> float:
        """The most a fresh bucket may let through: its capacity plus what refills while the burst lasts (a loaded
        machine makes bursts slow, and the allowance grows with them)."""
        return IP_BURST + IP_RATE * self.seconds

    def assert_limited(self) -> None:
        """No more passed than the allowance, and the allowance was short of the burst, so the limit held."""
        assert self.passed <= self.allowance, f"{self.passed} passed in {self.seconds:.1f} s, over the allowance"
        assert self.allowance < len(self.answers), f"the burst took {self.seconds:.1f} s, too slow to show a limit"


def burst(
    site: Site, count: int, source: str = "127.0.0.1", forwarded_for: Callable[[int], str] | None = None
) -> Burst:
    """`count` token requests sent at once from `source`, each on its own connection (so any worker may answer)."""

    def one(index: int) -> httpx.Response:
        headers = {"X-Forwarded-For": forwarded_for(index)} if forwarded_for else {}
        with client_from(source) as http:
            return http.post(f"{site.base_url}/oauth/token", headers=headers)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(one, range(count)))
    return Burst(answers, time.monotonic() - started)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with Site(tmp_path, extra_env=SLOW_REFILL) as running:
        yield running


def test_a_burst_from_one_ip_is_cut_at_the_bucket_and_other_ips_are_unaffected(site: Site) -> None:
    first = burst(site, 150)

    assert first.passed >= IP_BURST
    first.assert_limited()
    refused = [answer for answer in first.answers if answer.status_code == 429]
    assert refused, "nothing was refused"
    for answer in refused:
        assert answer.json()["error"] == "rate_limit_exceeded"
        assert int(answer.headers["retry-after"]) >= 1
    # another address has its own bucket
    assert burst(site, 5, source="127.0.0.2").passed == 5
    # and after Retry-After the first address is served again
    # (inherent: the bucket refills on the server's clock, in another process, so real time has to pass)
    time.sleep(int(refused[-1].headers["retry-after"]))
    assert burst(site, 1).passed == 1


def test_x_forwarded_for_is_believed_only_from_trusted_proxies(tmp_path: Path) -> None:
    env = {**SLOW_REFILL, "MUSTER_TRUSTED_PROXY_CIDRS": "127.0.0.1/32"}
    with Site(tmp_path, extra_env=env) as site:
        # Through the trusted proxy, one forwarded client empties its bucket, another still has its own
        burst(site, 130, forwarded_for=lambda _: "203.0.113.1").assert_limited()
        assert burst(site, 5, forwarded_for=lambda _: "203.0.113.2").passed == 5
        # From an untrusted peer, spoofed headers change nothing: every request spends the peer's own bucket
        burst(site, 130, source="127.0.0.3", forwarded_for=lambda index: f"198.51.100.{index}").assert_limited()


@pytest.mark.redis
def test_two_workers_sharing_redis_share_one_limit(tmp_path: Path) -> None:
    redis_url = require_redis()
    server = Site(tmp_path, redis_url=redis_url, workers=2, extra_env=SLOW_REFILL)
    try:
        with server:
            shared = burst(server, 150)
    finally:
        delete_redis_keys(redis_url, server.key_prefix)

    assert shared.passed >= IP_BURST
    shared.assert_limited()  # one bucket, not one per worker


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
