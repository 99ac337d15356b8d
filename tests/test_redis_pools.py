"""The Redis pools (django-redis's and the /mcp path's asyncio one) are bounded and reused, with the same timeouts."""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from asgiref.sync import async_to_sync

from infra.shared_cache import async_redis, sync_redis
from muster_project.derived_settings import REDIS_MAX_CONNECTIONS
from tests.support.cache import use_redis

CALLERS = REDIS_MAX_CONNECTIONS + 20
BLOCK_SECONDS = 0.2  # each caller holds its connection this long (BLPOP on an empty list)


@pytest.fixture
def redis_url(own_redis, settings) -> str:
    url, _ = own_redis
    use_redis(settings, url, "pools-test:")
    return url


def most_clients_seen(url: str, running) -> int:
    """The most connections the server counted while `running()` is true, besides this watcher's own."""
    most = 0
    with redis.Redis.from_url(url) as watcher:
        deadline = time.monotonic() + 10
        while running() and time.monotonic() < deadline:
            most = max(most, watcher.info("clients")["connected_clients"] - 1)
            time.sleep(0.01)
    return most


def test_the_sync_pool_never_opens_more_than_its_bound_and_everyone_is_served(redis_url):
    client = sync_redis()
    with ThreadPoolExecutor(CALLERS) as pool:
        calls = [pool.submit(client.blpop, ["empty"], BLOCK_SECONDS) for _ in range(CALLERS)]
        most = most_clients_seen(redis_url, lambda: not all(call.done() for call in calls))
        results = [call.result() for call in calls]

    assert results == [None] * CALLERS
    assert 0 < most <= REDIS_MAX_CONNECTIONS


def test_the_async_pool_never_opens_more_than_its_bound_and_everyone_is_served(redis_url):
    async def scenario() -> tuple[list, int]:
        client = async_redis()
        assert async_redis() is client  # one client, one pool, for the loop's life
        calls = [asyncio.ensure_future(client.blpop(["empty"], BLOCK_SECONDS)) for _ in range(CALLERS)]
        watching = asyncio.to_thread(most_clients_seen, redis_url, lambda: not all(call.done() for call in calls))
        most = await watching
        return await asyncio.gather(*calls), most

    results, most = async_to_sync(scenario)()

    assert results == [None] * CALLERS
    assert 0 < most <= REDIS_MAX_CONNECTIONS
