"""A revocation answered 200 holds on every worker within a second although Redis was paused or down meanwhile."""

import os
import signal
from datetime import timedelta

import pytest
import redis
from asgiref.sync import async_to_sync
from django.db import OperationalError, transaction
from django.utils import timezone
from oauth2_provider.models import AccessToken, RefreshToken

from infra import shared_cache
from mcp_gateway import bearer, revocations
from mcp_gateway.models import RecentRevocation
from mcp_gateway.revocations import POLL_SECONDS, RecentRevocations
from tests.support.cache import use_redis
from tests.support.flow import sign_in
from tests.support.tokens import checksum


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def worker(monkeypatch) -> Clock:
    """Another worker: its own in-process cache and its own view of the recent revocations, on a clock of ours."""
    clock = Clock()
    bearer._local.clear()
    monkeypatch.setattr(revocations, "recent", RecentRevocations(clock=clock))
    yield clock
    bearer._local.clear()


def verify(token: str):
    bearer._local.clear()  # past this worker's half-second cache: the shared entry or the database answers
    return async_to_sync(bearer.access_tokens.verify)(token)


@pytest.fixture
def redis_url(own_redis, settings) -> str:
    url, _ = own_redis
    use_redis(settings, url, "revocation-faults:")
    return url


def restore_entry(url: str, token: str, entry: bytes) -> None:
    """What a paused Redis may hold once it answers again: the entry from before the revocation, no tombstone."""
    with redis.Redis.from_url(url) as client:
        client.set(bearer._shared_key(checksum(token)), entry, ex=bearer.SHARED_SECONDS)


def shared_entry(url: str, token: str) -> bytes:
    with redis.Redis.from_url(url) as client:
        entry = client.get(bearer._shared_key(checksum(token)))
    assert entry is not None and entry != b"null"
    return entry


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_token_revoked_while_redis_is_paused_is_refused_once_redis_answers_again(
    redis_url, own_redis, worker, user, bob, public_client
):
    alice = sign_in(user, public_client.client_id)
    bob_tokens = sign_in(bob, public_client.client_id)
    assert verify(alice["access_token"]) is not None and verify(bob_tokens["access_token"]) is not None
    entry = shared_entry(redis_url, alice["access_token"])

    _, process = own_redis
    os.kill(process.pid, signal.SIGSTOP)
    try:
        RefreshToken.revoke_family(RefreshToken.objects.filter(user=user).get().token_family)  # the tombstone fails
    finally:
        os.kill(process.pid, signal.SIGCONT)
    restore_entry(redis_url, alice["access_token"], entry)

    worker.now += POLL_SECONDS
    assert verify(alice["access_token"]) is None
    assert verify(bob_tokens["access_token"]).subject == "bob"  # only the revoked token is refused


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_worker_refuses_a_stale_entry_at_its_next_read_of_the_revocations(redis_url, worker, user, public_client):
    tokens = sign_in(user, public_client.client_id)
    assert verify(tokens["access_token"]) is not None
    assert verify(tokens["access_token"]) is not None  # from Redis: this worker has read the revocations, none yet
    entry = shared_entry(redis_url, tokens["access_token"])

    RefreshToken.revoke_family(RefreshToken.objects.get().token_family)
    restore_entry(redis_url, tokens["access_token"], entry)

    assert verify(tokens["access_token"]) is not None  # read less than POLL_SECONDS ago: the stale entry answers
    worker.now += POLL_SECONDS
    assert verify(tokens["access_token"]) is None


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_restarted_worker_refuses_a_token_revoked_before_it_started(redis_url, user, public_client, monkeypatch):
    tokens = sign_in(user, public_client.client_id)
    assert verify(tokens["access_token"]) is not None
    entry = shared_entry(redis_url, tokens["access_token"])
    RefreshToken.revoke_family(RefreshToken.objects.get().token_family)
    restore_entry(redis_url, tokens["access_token"], entry)

    monkeypatch.setattr(revocations, "recent", RecentRevocations())  # a worker started after the revocation

    assert verify(tokens["access_token"]) is None


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_token_revoked_while_redis_is_down_is_refused(redis_url, own_redis, worker, user, public_client):
    tokens = sign_in(user, public_client.client_id)
    assert verify(tokens["access_token"]) is not None
    _, process = own_redis
    process.kill()
    process.wait(10)
    shared_cache._clients.clear()  # no pooled connection to the killed server is reused

    RefreshToken.revoke_family(RefreshToken.objects.get().token_family)

    assert verify(tokens["access_token"]) is None


@pytest.mark.django_db(transaction=True)
def test_a_revocation_rolled_back_records_nothing(user, public_client):
    tokens = sign_in(user, public_client.client_id)

    with pytest.raises(RuntimeError), transaction.atomic():
        RefreshToken.revoke_family(RefreshToken.objects.get().token_family)
        raise RuntimeError("the revocation fails")

    assert not RecentRevocation.objects.exists()
    assert verify(tokens["access_token"]) is not None


@pytest.mark.django_db(transaction=True)
def test_a_revocation_and_a_deactivation_are_recorded(user, bob, public_client):
    alice = sign_in(user, public_client.client_id)
    bob_tokens = sign_in(bob, public_client.client_id)

    RefreshToken.revoke_family(RefreshToken.objects.filter(user=user).get().token_family)
    bob.is_active = False
    bob.save()

    recorded = set(RecentRevocation.objects.values_list("token_checksum", flat=True))
    assert recorded == {checksum(alice["access_token"]), checksum(bob_tokens["access_token"])}


@pytest.mark.django_db(transaction=True)
def test_deleting_an_expired_token_records_nothing(user, public_client):
    sign_in(user, public_client.client_id)
    AccessToken.objects.update(expires=timezone.now() - timedelta(seconds=1))

    AccessToken.objects.all().delete()

    assert not RecentRevocation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_rows_older_than_any_cache_entry_are_deleted_by_the_next_revocation(user, public_client):
    old = timezone.now() - timedelta(seconds=revocations.KEEP_SECONDS + 1)
    RecentRevocation.objects.create(token_checksum="0" * 64, revoked_at=old)
    sign_in(user, public_client.client_id)

    RefreshToken.revoke_family(RefreshToken.objects.get().token_family)

    assert not RecentRevocation.objects.filter(revoked_at=old).exists()
    assert RecentRevocation.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_worker_forgets_revocations_once_no_cache_entry_can_hold_them(worker):
    RecentRevocation.objects.create(token_checksum="1" * 64, revoked_at=timezone.now())
    assert async_to_sync(revocations.recent.revoked)("1" * 64)

    RecentRevocation.objects.all().delete()
    worker.now += revocations.REMEMBER_SECONDS

    assert not async_to_sync(revocations.recent.revoked)("1" * 64)


@pytest.mark.django_db(transaction=True)
def test_a_failed_read_of_the_revocations_is_logged_and_made_again_at_the_next_poll(worker, monkeypatch, caplog):
    RecentRevocation.objects.create(token_checksum="2" * 64, revoked_at=timezone.now())
    read = revocations._revoked_since

    async def unreachable(since):
        raise OperationalError("the database is away")

    monkeypatch.setattr(revocations, "_revoked_since", unreachable)
    assert not async_to_sync(revocations.recent.revoked)("2" * 64)
    assert "could not read recent revocations" in caplog.text

    monkeypatch.setattr(revocations, "_revoked_since", read)
    worker.now += POLL_SECONDS
    assert async_to_sync(revocations.recent.revoked)("2" * 64)
