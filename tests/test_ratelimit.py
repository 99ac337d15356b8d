"""Token buckets and windows, in process memory and in a real Redis; the site's limiters; failing open."""

import dataclasses
import logging
import socket
import time

import pytest
import redis
from asgiref.sync import async_to_sync

from infra import metrics, ratelimit
from infra.config import StorageConfig
from infra.ratelimit import Decision, TokenBucket, Window
from tests.support.cache import use_redis
from tests.support.clock import ManualClock


@pytest.fixture(autouse=True)
def _fresh_limiters(settings):
    """Process memory unless a test asks for Redis, whatever this run's configuration."""
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, storage=StorageConfig())  # CACHES follows
    ratelimit.reset()
    yield
    ratelimit.reset()


@pytest.fixture
def refusals(monkeypatch) -> list[str]:
    """The limiter names passed to metrics.rate_limited."""
    seen: list[str] = []
    monkeypatch.setattr(metrics, "rate_limited", seen.append)
    return seen


@pytest.fixture
def backend_errors(monkeypatch) -> list[None]:
    """One entry per metrics.rate_limit_backend_error call."""
    seen: list[None] = []
    monkeypatch.setattr(metrics, "rate_limit_backend_error", lambda: seen.append(None))
    return seen


@pytest.fixture(autouse=True)
def _counted_metrics(refusals, backend_errors):
    """Every test counts metrics in lists, never in the real metric files."""


def _configure(settings, **limits: int) -> None:
    rate_limit = dataclasses.replace(settings.MUSTER_CONFIG.rate_limit, **limits)
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, rate_limit=rate_limit)


def _take_all(bucket: TokenBucket, key: str, times: int) -> list[Decision]:
    return [bucket.take(key) for _ in range(times)]


# --- in process memory (the embedded default) ---


def test_a_burst_is_allowed_then_refused_with_a_retry_after_of_at_least_one_second(refusals):
    bucket = TokenBucket("test", rate=50, burst=3, clock=ManualClock())

    decisions = _take_all(bucket, "a", 4)

    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[0] == Decision(allowed=True, retry_after=0)
    assert decisions[3] == Decision(allowed=False, retry_after=1)
    assert refusals == ["test"]


def test_tokens_refill_at_the_configured_rate():
    clock = ManualClock()
    bucket = TokenBucket("test", rate=2, burst=2, clock=clock)
    _take_all(bucket, "a", 2)
    assert not bucket.take("a").allowed

    clock.advance(0.5)  # one token back at 2 a second
    assert bucket.take("a").allowed
    assert not bucket.take("a").allowed

    clock.advance(60)  # never more than the burst
    assert [d.allowed for d in _take_all(bucket, "a", 3)] == [True, True, False]


def test_retry_after_is_the_whole_seconds_until_enough_tokens_return():
    clock = ManualClock()
    bucket = TokenBucket("test", rate=0.25, burst=2, clock=clock)
    _take_all(bucket, "a", 2)

    assert bucket.take("a").retry_after == 4
    assert bucket.take("a", cost=2).retry_after == 8
    clock.advance(3.5)
    assert bucket.take("a") == Decision(allowed=False, retry_after=1)
    clock.advance(0.5)
    assert bucket.take("a").allowed


def test_a_refused_request_does_not_use_up_tokens():
    clock = ManualClock()
    bucket = TokenBucket("test", rate=1, burst=1, clock=clock)
    bucket.take("a")
    for _ in range(5):
        assert not bucket.take("a").allowed

    clock.advance(1)
    assert bucket.take("a").allowed


def test_each_key_has_its_own_bucket():
    bucket = TokenBucket("test", rate=1, burst=1, clock=ManualClock())

    assert bucket.take("a").allowed
    assert not bucket.take("a").allowed
    assert bucket.take("b").allowed


def test_a_cost_outside_one_to_the_burst_is_a_programming_error():
    bucket = TokenBucket("test", rate=1, burst=2)

    with pytest.raises(ValueError, match="cost"):
        bucket.take("a", cost=3)
    with pytest.raises(ValueError, match="cost"):
        bucket.take("a", cost=0)


def test_memory_stays_bounded_and_idle_buckets_are_forgotten(monkeypatch):
    monkeypatch.setattr(ratelimit, "MAX_MEMORY_KEYS", 3)
    clock = ManualClock()
    bucket = TokenBucket("test", rate=1, burst=1, clock=clock)
    for key in ("a", "b", "c", "d", "e"):
        bucket.take(key)
    assert len(bucket.memory.entries) == 3

    clock.advance(1)  # every bucket is full again: nothing worth keeping
    bucket.take("f")
    assert list(bucket.memory.entries) == ["f"]


def test_the_least_recently_used_bucket_is_the_one_dropped_when_memory_is_full(monkeypatch):
    monkeypatch.setattr(ratelimit, "MAX_MEMORY_KEYS", 2)
    bucket = TokenBucket("test", rate=1, burst=1, clock=ManualClock())
    bucket.take("a")
    bucket.take("b")
    bucket.take("a")  # refused, but recently used

    bucket.take("c")

    assert list(bucket.memory.entries) == ["a", "c"]


def test_atake_uses_the_same_bucket_as_take():
    bucket = TokenBucket("test", rate=1, burst=2, clock=ManualClock())

    assert bucket.take("a").allowed
    assert async_to_sync(bucket.atake)("a").allowed
    refused = async_to_sync(bucket.atake)("a")
    assert refused == Decision(allowed=False, retry_after=1)


def test_a_window_refuses_past_its_limit_with_the_seconds_until_it_resets(refusals):
    clock = ManualClock()
    window = Window("registration", limit=2, window_seconds=3600, clock=clock)

    assert window.take("ip").allowed
    clock.advance(600)
    assert window.take("ip").allowed
    refused = window.take("ip")

    assert refused == Decision(allowed=False, retry_after=3000)
    assert refusals == ["registration"]
    assert window.take("other ip").allowed


def test_a_window_starts_afresh_once_it_has_ended():
    clock = ManualClock()
    window = Window("registration", limit=1, window_seconds=60, clock=clock)
    window.take("ip")
    clock.advance(59.5)
    assert window.take("ip") == Decision(allowed=False, retry_after=1)

    clock.advance(0.5)
    assert window.take("ip").allowed
    assert not window.take("ip").allowed


def test_the_site_limiters_follow_the_current_configuration(settings):
    _configure(settings, ip_rate=7, ip_burst=8, user_rate=9, user_burst=10, cimd_rate=2, cimd_burst=4)
    _configure(settings, registrations_per_hour=5)

    assert (ratelimit.per_ip().rate, ratelimit.per_ip().burst) == (7, 8)
    assert (ratelimit.per_user().rate, ratelimit.per_user().burst) == (9, 10)
    assert (ratelimit.cimd_fetches().rate, ratelimit.cimd_fetches().burst) == (2, 4)
    assert (ratelimit.registrations().limit, ratelimit.registrations().window_seconds) == (5, 3600)
    assert ratelimit.per_ip() is ratelimit.per_ip()

    _configure(settings, ip_burst=1)
    assert ratelimit.per_ip().burst == 1


def test_the_per_ip_limiter_keeps_its_counts_between_calls(settings):
    _configure(settings, ip_rate=1, ip_burst=2)

    assert [ratelimit.per_ip().take("198.51.100.9").allowed for _ in range(3)] == [True, True, False]


def test_security_log_lines_are_limited_per_user_client_and_event(settings, refusals):
    _configure(settings, security_log_rate=1, security_log_burst=2)

    lines = [ratelimit.security_log_allows("alice", "client-1", "refresh_reuse") for _ in range(3)]

    assert lines == [True, True, False]
    assert ratelimit.security_log_allows("alice", "client-1", "other_event")
    assert ratelimit.security_log_allows("alice", "client-2", "refresh_reuse")
    assert ratelimit.security_log_allows("bob", "client-1", "refresh_reuse")
    # A separator inside a value does not make two triples collide.
    assert ratelimit.security_log_allows("alice:client-1", "refresh_reuse", "x")
    assert refusals == ["security_log"]


# --- in a real Redis/Valkey, shared by every worker ---


@pytest.mark.redis
def test_with_redis_a_burst_is_allowed_then_refused_with_a_retry_after_of_at_least_one_second(shared_redis, refusals):
    bucket = TokenBucket("test", rate=0.5, burst=3)

    decisions = _take_all(bucket, "a", 4)

    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[3] == Decision(allowed=False, retry_after=2)
    assert refusals == ["test"]
    assert not bucket.memory.entries


@pytest.mark.redis
def test_with_redis_two_workers_share_one_bucket(shared_redis):
    worker_1, worker_2 = TokenBucket("test", rate=1, burst=2), TokenBucket("test", rate=1, burst=2)

    assert worker_1.take("a").allowed
    assert worker_2.take("a").allowed
    assert not worker_1.take("a").allowed
    assert not worker_2.take("a").allowed


@pytest.mark.redis
def test_with_redis_tokens_refill_over_time(shared_redis):
    bucket = TokenBucket("test", rate=20, burst=1)
    assert bucket.take("a").allowed
    assert not bucket.take("a").allowed

    time.sleep(0.08)  # a token every 50 ms (inherent: the script reads Redis's own clock, TIME)

    assert bucket.take("a").allowed


@pytest.mark.redis
def test_with_redis_keys_are_independent_and_vanish_once_idle(shared_redis):
    url, prefix = shared_redis
    bucket = TokenBucket("test", rate=10, burst=1)
    assert bucket.take("a").allowed
    assert not bucket.take("a").allowed
    assert bucket.take("b").allowed

    with redis.Redis.from_url(url) as client:
        ttl_ms = client.pttl(f"{prefix}ratelimit:test:a")
    assert 0 < ttl_ms <= 1100  # full again after 100 ms, plus a second's margin


@pytest.mark.redis
def test_with_redis_atake_shares_the_bucket_of_take(shared_redis):
    bucket = TokenBucket("test", rate=0.5, burst=2)

    assert bucket.take("a").allowed
    assert async_to_sync(bucket.atake)("a").allowed
    assert async_to_sync(bucket.atake)("a") == Decision(allowed=False, retry_after=2)
    assert not bucket.take("a").allowed


@pytest.mark.redis
def test_with_redis_a_window_refuses_with_the_seconds_until_it_resets(shared_redis, refusals):
    url, prefix = shared_redis
    worker_1, worker_2 = Window("registration", 2, 3600), Window("registration", 2, 3600)

    assert worker_1.take("ip").allowed
    assert worker_2.take("ip").allowed
    refused = worker_1.take("ip")

    assert not refused.allowed
    assert 3590 <= refused.retry_after <= 3600
    assert refusals == ["registration"]
    assert worker_2.take("other ip").allowed
    with redis.Redis.from_url(url) as client:
        assert client.get(f"{prefix}ratelimit:registration:ip") == b"3"


@pytest.mark.redis
def test_with_redis_the_site_limiters_share_counts_across_rebuilt_objects(shared_redis, settings):
    _configure(settings, ip_rate=1, ip_burst=2)
    ratelimit.per_ip().take("198.51.100.9")
    ratelimit.per_ip().take("198.51.100.9")

    ratelimit.reset()  # as if another worker answered

    assert not ratelimit.per_ip().take("198.51.100.9").allowed


@pytest.mark.redis
def test_with_redis_a_server_that_lost_the_script_is_sent_it_again(own_redis, settings):
    url, _ = own_redis  # flushing scripts touches the whole server: a server of this test's own
    use_redis(settings, url, "ratelimit-test:")
    bucket = TokenBucket("test", rate=1, burst=2)
    assert bucket.take("a").allowed
    with redis.Redis.from_url(url) as client:
        client.script_flush()

    assert bucket.take("a").allowed
    assert async_to_sync(bucket.atake)("a") == Decision(allowed=False, retry_after=1)


# --- a store that fails: let requests through ---


@pytest.fixture
def unreachable_redis(settings):
    """Valkey storage pointing at a closed port."""
    use_redis(settings, "redis://127.0.0.1:1/0", "ratelimit-test-unreachable:")


def _warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "muster.ratelimit" and r.levelno == logging.WARNING]


def test_an_unreachable_store_lets_requests_through_counts_them_and_warns_once(
    unreachable_redis, backend_errors, refusals, caplog
):
    bucket = TokenBucket("test", rate=1, burst=1)

    with caplog.at_level(logging.WARNING, logger="muster.ratelimit"):
        decisions = _take_all(bucket, "a", 2)

    assert decisions == [Decision(allowed=True, retry_after=0)] * 2
    assert len(backend_errors) == 2
    assert len(_warnings(caplog)) == 1
    assert "ConnectionError" in _warnings(caplog)[0].getMessage()
    assert refusals == []


def test_an_unreachable_store_lets_async_requests_through(unreachable_redis, backend_errors, caplog):
    bucket = TokenBucket("test", rate=1, burst=1)

    with caplog.at_level(logging.WARNING, logger="muster.ratelimit"):
        assert async_to_sync(bucket.atake)("a").allowed
        assert async_to_sync(bucket.atake)("a").allowed

    assert len(backend_errors) == 2
    assert len(_warnings(caplog)) == 1


def test_an_unreachable_store_lets_registrations_and_log_lines_through(unreachable_redis, backend_errors, settings):
    _configure(settings, registrations_per_hour=1, security_log_burst=1)

    assert all(ratelimit.registrations().take("ip").allowed for _ in range(3))
    assert all(ratelimit.security_log_allows("alice", "c", "e") for _ in range(3))
    assert len(backend_errors) == 6


def test_the_warning_comes_back_after_a_minute(unreachable_redis, backend_errors, caplog, monkeypatch):
    bucket = TokenBucket("test", rate=1, burst=1)

    with caplog.at_level(logging.WARNING, logger="muster.ratelimit"):
        bucket.take("a")
        bucket.take("a")
        monkeypatch.setattr(ratelimit, "_last_warning", ratelimit._last_warning - 61)
        bucket.take("a")

    assert len(_warnings(caplog)) == 2
    assert len(backend_errors) == 3


def test_a_store_that_never_answers_holds_an_async_request_no_longer_than_the_timeout(
    settings, backend_errors, monkeypatch
):
    monkeypatch.setattr(ratelimit, "ASYNC_TIMEOUT_SECONDS", 0.1)
    with socket.socket() as silent:  # accepts connections, never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        use_redis(settings, f"redis://127.0.0.1:{silent.getsockname()[1]}/0", "ratelimit-test-silent:")
        start = time.monotonic()

        decision = async_to_sync(TokenBucket("test", rate=1, burst=1).atake)("a")

    assert decision.allowed
    assert time.monotonic() - start < 0.5
    assert len(backend_errors) == 1
