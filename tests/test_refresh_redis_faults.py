"""Refreshes and locks when the shared Redis dies or hangs: committed rotations stand, the rest answer 503."""

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest
import redis
from asgiref.sync import async_to_sync
from django.core.cache import cache
from django.db.models.signals import post_save
from oauth2_provider.models import RefreshToken

from infra import redis_outage
from infra.locks import LockTimeout, cache_lock
from infra.outages import RETRY_AFTER_SECONDS, is_outage
from infra.shared_cache import async_redis, sync_redis
from oauth_server.models import RefreshGraceCopy
from tests.servers.redis_process import restarted
from tests.support.cache import use_redis
from tests.support.clock import ManualClock
from tests.support.flow import exchange, issue_code, refresh
from tests.support.tokens import checksum, family_of

WAIT_BOUND_SECONDS = 10.0


@pytest.fixture
def redis_cache(own_redis, settings) -> Iterator[tuple[str, "subprocess.Popen[bytes]"]]:
    """The shared cache (so the token endpoint's locks) on a Redis of this test's own."""
    url, process = own_redis
    use_redis(settings, url, "refresh-faults:")
    yield url, process


@pytest.fixture
def outage_clock(monkeypatch) -> ManualClock:
    """The outage hold's clock, standing still until the test moves it."""
    clock = ManualClock()
    monkeypatch.setattr(redis_outage, "clock", clock)
    return clock


@pytest.fixture
def tokens(client, user, public_client, redis_cache) -> dict[str, str]:
    client.force_login(user)
    code, verifier, _ = issue_code(client, public_client.client_id)
    response = exchange(client, public_client.client_id, code, verifier)
    assert response.status_code == 200
    return response.json()


def killed(process: "subprocess.Popen[bytes]") -> None:
    process.kill()
    process.wait(timeout=WAIT_BOUND_SECONDS)


@contextmanager
def redis_killed_once_the_grace_copy_is_written(process: "subprocess.Popen[bytes]") -> Iterator[None]:
    """Kill Redis inside the rotation's transaction, after its writes and before the lock is released."""

    def kill(**_: object) -> None:
        killed(process)

    post_save.connect(kill, sender=RefreshGraceCopy, weak=False)
    try:
        yield
    finally:
        post_save.disconnect(kill, sender=RefreshGraceCopy)


def assert_retry_later(response) -> None:
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "temporarily_unavailable"
    assert response["Retry-After"]


@pytest.mark.django_db
def test_a_rotation_that_committed_as_redis_died_is_answered_and_its_retry_gets_the_same_pair(
    client, public_client, tokens, redis_cache, tmp_path, outage_clock
):
    url, process = redis_cache
    with redis_killed_once_the_grace_copy_is_written(process):
        rotated = refresh(client, public_client.client_id, tokens["refresh_token"])

    assert rotated.status_code == 200
    assert_retry_later(refresh(client, public_client.client_id, tokens["refresh_token"]))  # Redis still down
    with restarted(url, tmp_path):
        outage_clock.advance(redis_outage.HOLD_SECONDS)
        retried = refresh(client, public_client.client_id, tokens["refresh_token"])

    assert retried.status_code == 200
    assert retried.json() == rotated.json()
    assert RefreshToken.objects.filter(token_family=family_of(tokens), revoked__isnull=True).count() == 1


@pytest.mark.django_db
def test_a_rotation_that_cannot_take_its_lock_answers_the_outage_503_and_the_token_works_after_recovery(
    client, public_client, tokens, redis_cache, tmp_path, outage_clock
):
    url, process = redis_cache
    killed(process)

    unavailable = refresh(client, public_client.client_id, tokens["refresh_token"])

    assert_retry_later(unavailable)
    assert unavailable["Retry-After"] == str(RETRY_AFTER_SECONDS)  # an outage's, not a busy grant's 1 s

    assert RefreshToken.objects.get(token_checksum=checksum(tokens["refresh_token"])).revoked is None
    with restarted(url, tmp_path):
        outage_clock.advance(redis_outage.HOLD_SECONDS)
        assert refresh(client, public_client.client_id, tokens["refresh_token"]).status_code == 200


@pytest.mark.django_db
def test_a_refresh_while_redis_hangs_costs_one_short_timeout_and_works_once_it_resumes(
    client, public_client, tokens, redis_cache, outage_clock, caplog
):
    _, process = redis_cache
    os.kill(process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert_retry_later(refresh(client, public_client.client_id, tokens["refresh_token"]))
        elapsed = time.monotonic() - started
    finally:
        os.kill(process.pid, signal.SIGCONT)

    timeouts = [record for record in caplog.records if record.name == "infra.redis_outage"]
    assert len(timeouts) == 1  # the rate limit's call waited; the lock's failed at once
    assert elapsed < WAIT_BOUND_SECONDS / 2  # not the lock's whole wait
    outage_clock.advance(redis_outage.HOLD_SECONDS)
    assert refresh(client, public_client.client_id, tokens["refresh_token"]).status_code == 200


def test_a_lock_that_expired_and_was_retaken_is_not_freed_by_its_first_holder(redis_cache):
    url, _ = redis_cache
    key = cache.make_key("lock:shared")
    with redis.Redis.from_url(url) as raw, ExitStack() as first:
        first.enter_context(cache_lock("shared", ttl_seconds=0.1))
        deadline = time.monotonic() + WAIT_BOUND_SECONDS
        while raw.exists(key) and time.monotonic() < deadline:
            time.sleep(0.02)
        with cache_lock("shared", wait_seconds=0):
            first.close()  # the first holder, late, lets go

            assert raw.exists(key)
        assert not raw.exists(key)


def test_a_lock_held_by_another_is_not_taken(redis_cache):
    with cache_lock("shared"), pytest.raises(LockTimeout), cache_lock("shared", wait_seconds=0.1):
        pass


def test_a_lock_on_a_dead_redis_is_an_outage_not_a_lock_taken(redis_cache):
    _, process = redis_cache
    killed(process)

    with pytest.raises(Exception) as raised, cache_lock("shared"):
        pytest.fail("the lock was taken on a dead Redis")

    assert is_outage(raised.value)


def test_a_server_that_failed_is_not_asked_again_until_the_hold_passes(redis_cache, outage_clock):
    _, process = redis_cache
    killed(process)
    client = sync_redis()

    with pytest.raises(redis.ConnectionError) as first:
        client.get("key")
    with pytest.raises(redis_outage.RedisMarkedDown):
        client.get("key")
    outage_clock.advance(redis_outage.HOLD_SECONDS)
    with pytest.raises(redis.ConnectionError) as after_the_hold:
        client.get("key")

    assert not isinstance(first.value, redis_outage.RedisMarkedDown)
    assert not isinstance(after_the_hold.value, redis_outage.RedisMarkedDown)


def test_the_asyncio_pool_fails_fast_too(redis_cache, outage_clock):
    _, process = redis_cache
    killed(process)

    async def twice() -> list[type[BaseException]]:
        failures = []
        for _ in range(2):
            try:
                await async_redis().get("key")
            except redis.ConnectionError as exc:
                failures.append(type(exc))
        return failures

    first, second = async_to_sync(twice)()

    assert first is not redis_outage.RedisMarkedDown
    assert second is redis_outage.RedisMarkedDown


def test_a_server_marked_down_leaves_other_servers_asked(redis_cache, outage_clock):
    closed_port = redis_outage.FailFastPool.from_url("redis://127.0.0.1:1/0")
    with redis.Redis(connection_pool=closed_port) as closed, pytest.raises(redis.ConnectionError):
        closed.ping()

    assert sync_redis().ping()
