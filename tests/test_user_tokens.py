"""DELETE /user-tokens: a user signs out everywhere with one of their bearer tokens."""

import pytest
from oauth2_provider.models import AccessToken, RefreshToken

from tests.support.flow import sign_in

PRM = 'resource_metadata="http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp"'


@pytest.mark.django_db(transaction=True)
def test_signing_out_everywhere_revokes_every_family_of_the_user_and_no_one_elses(
    client, user, bob, public_client, confidential_client
):
    first = sign_in(user, public_client.client_id)
    sign_in(user, public_client.client_id)
    bobs = sign_in(bob, public_client.client_id)

    response = client.delete("/user-tokens", HTTP_AUTHORIZATION=f"Bearer {first['access_token']}")

    assert response.status_code == 204
    assert not RefreshToken.objects.filter(user=user, revoked__isnull=True).exists()
    assert not AccessToken.objects.filter(user=user).exists()
    assert AccessToken.objects.filter(user=bob).count() == 1
    assert RefreshToken.objects.get(token_checksum__isnull=False, user=bob).revoked is None
    assert bobs["access_token"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "authorization", [None, "Basic YWxpY2U6eA==", "Bearer not-a-token", "Bearer ", "Bearer two words"]
)
def test_without_a_valid_bearer_token_nothing_is_revoked(client, user, public_client, authorization):
    sign_in(user, public_client.client_id)
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}

    response = client.delete("/user-tokens", **headers)

    assert response.status_code == 401
    assert PRM in response["WWW-Authenticate"]
    assert RefreshToken.objects.filter(revoked__isnull=True).count() == 1


@pytest.mark.django_db
def test_only_delete_is_accepted(client):
    assert client.get("/user-tokens").status_code == 405
    assert client.post("/user-tokens").status_code == 405
