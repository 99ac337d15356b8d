"""The token endpoint's deadline: a request that ran past it commits nothing and revokes nothing."""

import pytest
from django.db.models.signals import post_save
from oauth2_provider.models import RefreshToken

from infra import deadlines
from oauth_server.models import RefreshGraceCopy
from oauth_server.views.token import REQUEST_DEADLINE_SECONDS
from tests.support.clock import LateClock, ManualClock
from tests.support.flow import exchange, issue_code, refresh
from tests.support.tokens import checksum, grace_passed


@pytest.fixture
def tokens(client, user, public_client) -> dict[str, str]:
    client.force_login(user)
    code, verifier, _ = issue_code(client, public_client.client_id)
    response = exchange(client, public_client.client_id, code, verifier)
    assert response.status_code == 200
    return response.json()


def assert_retry_later(response) -> None:
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert response["Retry-After"] == "1"


@pytest.mark.django_db
def test_a_late_duplicate_of_a_rotated_refresh_is_abandoned_and_revokes_nothing(
    client, public_client, tokens, monkeypatch
):
    rotated = refresh(client, public_client.client_id, tokens["refresh_token"]).json()
    grace_passed(tokens["refresh_token"])
    monkeypatch.setattr(deadlines, "clock", LateClock(late_by=REQUEST_DEADLINE_SECONDS))

    assert_retry_later(refresh(client, public_client.client_id, tokens["refresh_token"]))

    assert RefreshToken.objects.get(token_checksum=checksum(rotated["refresh_token"])).revoked is None


@pytest.mark.django_db
def test_a_duplicate_in_time_after_the_grace_still_revokes_the_family(client, public_client, tokens, monkeypatch):
    rotated = refresh(client, public_client.client_id, tokens["refresh_token"]).json()
    grace_passed(tokens["refresh_token"])
    monkeypatch.setattr(deadlines, "clock", LateClock(late_by=REQUEST_DEADLINE_SECONDS - 1))

    assert refresh(client, public_client.client_id, tokens["refresh_token"]).status_code == 400

    assert RefreshToken.objects.get(token_checksum=checksum(rotated["refresh_token"])).revoked is not None


@pytest.mark.django_db
def test_a_rotation_that_ran_past_its_deadline_is_rolled_back_and_the_token_still_works(
    client, public_client, tokens, monkeypatch
):
    clock = ManualClock()
    monkeypatch.setattr(deadlines, "clock", clock)

    def run_late(**_: object) -> None:
        clock.advance(REQUEST_DEADLINE_SECONDS)

    post_save.connect(run_late, sender=RefreshGraceCopy, weak=False)
    try:
        assert_retry_later(refresh(client, public_client.client_id, tokens["refresh_token"]))
    finally:
        post_save.disconnect(run_late, sender=RefreshGraceCopy)

    assert RefreshToken.objects.get(token_checksum=checksum(tokens["refresh_token"])).revoked is None
    assert not RefreshGraceCopy.objects.exists()
    assert refresh(client, public_client.client_id, tokens["refresh_token"]).status_code == 200
