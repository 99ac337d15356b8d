"""RFC 7009 revocation at /oauth/revoke: scoped to the calling client; a refresh token ends its family."""

import pytest
from oauth2_provider.models import AccessToken, RefreshToken

from tests.support.flow import exchange, issue_code, refresh, revoke
from tests.support.tokens import checksum


@pytest.fixture
def session(client, user, public_client) -> dict:
    """A family two generations long: the first pair rotated into the current one."""
    client.force_login(user)
    code, verifier, _ = issue_code(client, public_client.client_id)
    first = exchange(client, public_client.client_id, code, verifier).json()
    return refresh(client, public_client.client_id, first["refresh_token"]).json()


@pytest.mark.django_db
def test_revoking_a_refresh_token_revokes_its_whole_family(client, public_client, session):
    response = revoke(client, public_client.client_id, session["refresh_token"], token_type_hint="refresh_token")

    assert response.status_code == 200
    assert not RefreshToken.objects.filter(revoked__isnull=True).exists()
    assert not AccessToken.objects.exists()
    assert refresh(client, public_client.client_id, session["refresh_token"]).status_code == 400


@pytest.mark.django_db
def test_revoking_an_access_token_stops_it_and_its_refresh_token(client, public_client, session):
    response = revoke(client, public_client.client_id, session["access_token"])

    assert response.status_code == 200
    assert not AccessToken.objects.filter(token_checksum=checksum(session["access_token"])).exists()
    assert refresh(client, public_client.client_id, session["refresh_token"]).status_code == 400


@pytest.mark.django_db
def test_an_unknown_token_is_answered_200_and_changes_nothing(client, public_client, session):
    response = revoke(client, public_client.client_id, "never-issued")

    assert response.status_code == 200
    assert AccessToken.objects.count() == 1
    assert RefreshToken.objects.filter(revoked__isnull=True).count() == 1


@pytest.mark.django_db
def test_a_client_cannot_revoke_another_clients_tokens(client, public_client, confidential_client, session):
    other, secret = confidential_client

    response = revoke(client, other.client_id, session["refresh_token"], client_secret=secret)

    assert response.status_code == 200
    assert RefreshToken.objects.filter(revoked__isnull=True).count() == 1
    assert refresh(client, public_client.client_id, session["refresh_token"]).status_code == 200


@pytest.mark.django_db
def test_a_confidential_client_must_authenticate_to_revoke(client, confidential_client):
    app, _ = confidential_client

    response = revoke(client, app.client_id, "anything", client_secret="wrong")

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


@pytest.mark.django_db
def test_revocation_without_a_token_is_invalid_request(client, public_client):
    response = client.post("/oauth/revoke", {"client_id": public_client.client_id})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.django_db
def test_revoking_an_old_generation_does_not_touch_the_live_family(client, public_client, user):
    client.force_login(user)
    code, verifier, _ = issue_code(client, public_client.client_id)
    first = exchange(client, public_client.client_id, code, verifier).json()
    current = refresh(client, public_client.client_id, first["refresh_token"]).json()

    response = revoke(client, public_client.client_id, first["refresh_token"], token_type_hint="refresh_token")

    assert response.status_code == 200
    assert AccessToken.objects.filter(token_checksum=checksum(current["access_token"])).exists()
