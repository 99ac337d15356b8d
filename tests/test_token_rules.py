"""Token endpoint rules: PKCE verification, client authentication, resource binding, lifetimes, replays."""

import dataclasses
from datetime import timedelta

import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken, Grant, RefreshToken

from oauth_server.models import RefreshGraceCopy
from tests.support.flow import basic, exchange, issue_code, refresh
from tests.support.tokens import checksum, grace_passed

GRANT_FAILED = "The authorization code or refresh token is invalid, expired or revoked."


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def tokens(signed_in, public_client) -> dict:
    code, verifier, _ = issue_code(signed_in, public_client.client_id)
    response = exchange(signed_in, public_client.client_id, code, verifier)
    assert response.status_code == 200
    return response.json()


@pytest.mark.django_db
def test_tokens_are_opaque_and_stored_only_as_checksums(tokens):
    access = AccessToken.objects.get(token_checksum=checksum(tokens["access_token"]))
    refresh_row = RefreshToken.objects.get(token_checksum=checksum(tokens["refresh_token"]))

    assert access.token == "" and refresh_row.token == ""
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 1800
    assert timedelta(minutes=29) < access.expires - timezone.now() <= timedelta(minutes=30)
    assert access.resource == ["http://127.0.0.1:8000/mcp"] == refresh_row.resource


@pytest.mark.django_db
def test_token_responses_are_never_cached(signed_in, public_client):
    code, verifier, _ = issue_code(signed_in, public_client.client_id)

    response = exchange(signed_in, public_client.client_id, code, verifier)

    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "verifier",
    ["wrong-" + "v" * 43, "short", "x" * 129, "has spaces in it and is long enough to pass the length check"],
)
def test_wrong_or_malformed_verifier_is_invalid_grant_without_detail(signed_in, public_client, verifier):
    code, _, _ = issue_code(signed_in, public_client.client_id)

    response = exchange(signed_in, public_client.client_id, code, verifier)

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": GRANT_FAILED}
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_missing_verifier_is_refused(signed_in, public_client):
    code, _, _ = issue_code(signed_in, public_client.client_id)

    response = signed_in.post(
        "/oauth/token",
        {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": public_client.client_id,
            "redirect_uri": "http://127.0.0.1/callback",
        },
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_redirect_uri_must_match_the_authorization_exactly(signed_in, public_client):
    code, verifier, _ = issue_code(signed_in, public_client.client_id)

    response = exchange(
        signed_in, public_client.client_id, code, verifier, redirect_uri="http://127.0.0.1:5000/callback"
    )

    assert response.status_code == 400
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_a_code_used_twice_is_refused_and_its_tokens_revoked(signed_in, public_client):
    code, verifier, _ = issue_code(signed_in, public_client.client_id)
    first = exchange(signed_in, public_client.client_id, code, verifier).json()

    second = exchange(signed_in, public_client.client_id, code, verifier)

    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    assert not AccessToken.objects.filter(token_checksum=checksum(first["access_token"])).exists()
    assert refresh(signed_in, public_client.client_id, first["refresh_token"]).status_code == 400


@pytest.mark.django_db
def test_a_code_is_bound_to_its_client(signed_in, public_client, confidential_client):
    other, secret = confidential_client
    code, verifier, _ = issue_code(signed_in, public_client.client_id)

    response = exchange(signed_in, other.client_id, code, verifier, client_secret=secret)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert Grant.objects.count() == 1


@pytest.mark.django_db
def test_unknown_client_is_invalid_client_with_401(signed_in, public_client):
    code, verifier, _ = issue_code(signed_in, public_client.client_id)

    response = exchange(signed_in, "no-such-client", code, verifier)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert Grant.objects.count() == 1


@pytest.mark.django_db
def test_basic_user_different_from_form_client_id_is_invalid_client(signed_in, public_client, confidential_client):
    other, secret = confidential_client
    code, verifier, _ = issue_code(signed_in, public_client.client_id)

    response = exchange(
        signed_in, public_client.client_id, code, verifier, headers={"Authorization": basic(other.client_id, secret)}
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["client_secret_basic", "client_secret_post"])
def test_confidential_client_authenticates_with_basic_or_post(signed_in, confidential_client, how):
    app, secret = confidential_client
    code, verifier, _ = issue_code(signed_in, app.client_id)
    extra = (
        {"headers": {"Authorization": basic(app.client_id, secret)}}
        if how == "client_secret_basic"
        else {"client_secret": secret}
    )

    response = exchange(signed_in, app.client_id, code, verifier, **extra)

    assert response.status_code == 200, response.content


@pytest.mark.django_db
@pytest.mark.parametrize("secret", ["", "wrong"])
def test_confidential_client_without_its_secret_is_refused(signed_in, confidential_client, secret):
    app, _ = confidential_client
    code, verifier, _ = issue_code(signed_in, app.client_id)

    response = exchange(signed_in, app.client_id, code, verifier, client_secret=secret)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_confidential_clients_need_pkce_too(signed_in, confidential_client):
    app, _ = confidential_client

    response = signed_in.get(
        f"/oauth/authorize?response_type=code&client_id={app.client_id}&redirect_uri=http://127.0.0.1/callback"
        f"&state={'s' * 30}&scope=mcp"
    )

    assert response.status_code == 302
    assert "error=invalid_request" in response["Location"]


@pytest.mark.django_db
@pytest.mark.parametrize("resource", ["https://other.example/mcp", "http://127.0.0.1:8000/"])
def test_a_foreign_resource_at_the_token_endpoint_is_invalid_target(signed_in, public_client, resource):
    code, verifier, _ = issue_code(signed_in, public_client.client_id)

    response = exchange(signed_in, public_client.client_id, code, verifier, resource=resource)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_the_mcp_resource_with_a_trailing_slash_is_accepted_at_the_token_endpoint(signed_in, public_client):
    code, verifier, _ = issue_code(signed_in, public_client.client_id)

    response = exchange(signed_in, public_client.client_id, code, verifier, resource="http://127.0.0.1:8000/mcp/")

    assert response.status_code == 200
    assert AccessToken.objects.get().resource == ["http://127.0.0.1:8000/mcp"]


@pytest.mark.django_db
def test_every_resource_asked_for_at_the_token_endpoint_must_be_the_mcp_resource(signed_in, public_client):
    code, verifier, _ = issue_code(signed_in, public_client.client_id)

    asked = ["http://127.0.0.1:8000/mcp", "https://other.example/mcp"]
    response = exchange(signed_in, public_client.client_id, code, verifier, resource=asked)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_a_code_bound_to_another_resource_gets_no_token(signed_in, public_client, caplog, audit_log):
    code, verifier, _ = issue_code(signed_in, public_client.client_id)
    Grant.objects.update(resource=["https://old.example/mcp"])  # say `resourceIdentifier` changed since

    response = exchange(signed_in, public_client.client_id, code, verifier)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"
    assert response["Cache-Control"] == "no-store"
    assert "resource_mismatch" in caplog.text
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_a_refresh_token_bound_to_another_resource_gets_no_token_and_stays_unspent(
    signed_in, public_client, tokens, caplog, audit_log
):
    RefreshToken.objects.update(resource=["https://old.example/mcp"])  # say `resourceIdentifier` changed since

    response = refresh(signed_in, public_client.client_id, tokens["refresh_token"])

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"
    assert "resource_mismatch" in caplog.text
    assert AccessToken.objects.count() == 1
    assert RefreshToken.objects.get().revoked is None


@pytest.mark.django_db
def test_a_refresh_asking_for_the_mcp_resource_keeps_the_binding(signed_in, public_client, tokens):
    response = refresh(
        signed_in, public_client.client_id, tokens["refresh_token"], resource="HTTP://127.0.0.1:8000/mcp/"
    )

    assert response.status_code == 200
    assert AccessToken.objects.get(token_checksum=checksum(response.json()["access_token"])).resource == [
        "http://127.0.0.1:8000/mcp"
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "grant_type",
    ["password", "client_credentials", "implicit", "urn:ietf:params:oauth:grant-type:device_code"],
)
def test_only_authorization_code_and_refresh_grants_exist(client, confidential_client, grant_type):
    app, secret = confidential_client

    response = client.post(
        "/oauth/token",
        {
            "grant_type": grant_type,
            "client_id": app.client_id,
            "client_secret": secret,
            "username": "alice",
            "password": "x",
            "device_code": "x",
        },
    )

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_every_refresh_rotates_within_the_family(signed_in, public_client, tokens):
    rotated = refresh(signed_in, public_client.client_id, tokens["refresh_token"]).json()

    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert rotated["access_token"] != tokens["access_token"]
    old = RefreshToken.objects.get(token_checksum=checksum(tokens["refresh_token"]))
    new = RefreshToken.objects.get(token_checksum=checksum(rotated["refresh_token"]))
    assert old.revoked is not None and new.revoked is None
    assert old.token_family == new.token_family
    assert not AccessToken.objects.filter(token_checksum=checksum(tokens["access_token"])).exists()


@pytest.mark.django_db
def test_replay_within_the_grace_returns_the_same_pair_and_keeps_the_family(signed_in, public_client, tokens):
    rotated = refresh(signed_in, public_client.client_id, tokens["refresh_token"]).json()

    replayed = refresh(signed_in, public_client.client_id, tokens["refresh_token"])

    assert replayed.status_code == 200
    assert replayed.json() == rotated
    assert refresh(signed_in, public_client.client_id, rotated["refresh_token"]).status_code == 200


@pytest.mark.django_db
def test_the_grace_keeps_no_usable_token_in_the_database(signed_in, public_client, tokens):
    rotated = refresh(signed_in, public_client.client_id, tokens["refresh_token"]).json()

    kept = bytes(RefreshGraceCopy.objects.get(old_token_checksum=checksum(tokens["refresh_token"])).sealed)

    assert rotated["refresh_token"].encode() not in kept
    assert rotated["access_token"].encode() not in kept


@pytest.mark.django_db
def test_replay_after_the_grace_revokes_the_family(signed_in, public_client, tokens):
    rotated = refresh(signed_in, public_client.client_id, tokens["refresh_token"]).json()
    grace_passed(tokens["refresh_token"])

    replayed = refresh(signed_in, public_client.client_id, tokens["refresh_token"])

    assert replayed.status_code == 400
    assert replayed.json() == {"error": "invalid_grant", "error_description": GRANT_FAILED}
    assert refresh(signed_in, public_client.client_id, rotated["refresh_token"]).status_code == 400
    assert not AccessToken.objects.filter(token_checksum=checksum(rotated["access_token"])).exists()


@pytest.mark.django_db
def test_replay_of_an_older_generation_revokes_the_family_even_within_the_grace(signed_in, public_client, tokens):
    second = refresh(signed_in, public_client.client_id, tokens["refresh_token"]).json()
    third = refresh(signed_in, public_client.client_id, second["refresh_token"]).json()

    replayed = refresh(signed_in, public_client.client_id, tokens["refresh_token"])

    assert replayed.status_code == 400
    assert refresh(signed_in, public_client.client_id, third["refresh_token"]).status_code == 400


@pytest.mark.django_db
def test_another_client_replaying_a_rotated_token_gets_nothing_and_the_family_dies(
    signed_in, public_client, confidential_client, tokens
):
    other, secret = confidential_client
    rotated = refresh(signed_in, public_client.client_id, tokens["refresh_token"]).json()

    stolen = refresh(signed_in, other.client_id, tokens["refresh_token"], client_secret=secret)

    assert stolen.status_code == 400
    assert "access_token" not in stolen.json()
    assert refresh(signed_in, public_client.client_id, rotated["refresh_token"]).status_code == 400


@pytest.mark.django_db
def test_a_refresh_token_is_bound_to_its_client(signed_in, public_client, confidential_client, tokens):
    other, secret = confidential_client

    response = refresh(signed_in, other.client_id, tokens["refresh_token"], client_secret=secret)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


@pytest.mark.django_db
def test_refresh_tokens_die_after_the_session_duration(signed_in, public_client, tokens, settings):
    RefreshToken.objects.update(created=timezone.now() - timedelta(hours=720, seconds=1))

    response = refresh(signed_in, public_client.client_id, tokens["refresh_token"])

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


@pytest.mark.django_db
def test_the_session_duration_restarts_at_each_rotation(signed_in, public_client, tokens):
    RefreshToken.objects.update(created=timezone.now() - timedelta(hours=719))

    rotated = refresh(signed_in, public_client.client_id, tokens["refresh_token"]).json()

    new = RefreshToken.objects.get(token_checksum=checksum(rotated["refresh_token"]))
    assert timezone.now() - new.created < timedelta(minutes=1)


@pytest.mark.django_db
def test_a_deactivated_user_cannot_refresh(signed_in, public_client, user, tokens):
    user.is_active = False
    user.save()

    response = refresh(signed_in, public_client.client_id, tokens["refresh_token"])

    assert response.status_code == 400
    assert RefreshToken.objects.filter(revoked__isnull=True).count() == 1


@pytest.mark.django_db
def test_a_deactivated_user_cannot_exchange_a_code(signed_in, public_client, user):
    code, verifier, _ = issue_code(signed_in, public_client.client_id)
    user.is_active = False
    user.save()

    response = exchange(signed_in, public_client.client_id, code, verifier)

    assert response.status_code == 400
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_an_unknown_refresh_token_is_invalid_grant(signed_in, public_client):
    response = refresh(signed_in, public_client.client_id, "not-a-token")

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": GRANT_FAILED}


@pytest.mark.django_db
def test_a_confidential_client_must_authenticate_to_get_the_kept_pair(signed_in, confidential_client):
    app, secret = confidential_client
    code, verifier, _ = issue_code(signed_in, app.client_id)
    first = exchange(signed_in, app.client_id, code, verifier, client_secret=secret).json()
    rotated = refresh(signed_in, app.client_id, first["refresh_token"], client_secret=secret).json()

    unauthenticated = refresh(signed_in, app.client_id, first["refresh_token"])

    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"] == "invalid_client"
    replayed = refresh(signed_in, app.client_id, first["refresh_token"], client_secret=secret)
    assert replayed.json() == rotated


@pytest.mark.django_db
def test_an_altered_grace_entry_is_ignored_and_the_replay_treated_as_reuse(signed_in, public_client, tokens):
    rotated = refresh(signed_in, public_client.client_id, tokens["refresh_token"]).json()
    kept = RefreshGraceCopy.objects.get(old_token_checksum=checksum(tokens["refresh_token"]))
    sealed = bytes(kept.sealed)
    RefreshGraceCopy.objects.filter(pk=kept.pk).update(sealed=sealed[:-1] + bytes([sealed[-1] ^ 1]))

    replayed = refresh(signed_in, public_client.client_id, tokens["refresh_token"])

    assert replayed.status_code == 400
    assert refresh(signed_in, public_client.client_id, rotated["refresh_token"]).status_code == 400


@pytest.mark.django_db
def test_a_grant_held_by_another_request_too_long_gets_a_retryable_503(signed_in, public_client, tokens, monkeypatch):
    from infra.locks import cache_lock
    from oauth_server.views import token as token_view

    monkeypatch.setattr(token_view, "LOCK_WAIT_SECONDS", 0.1)
    with cache_lock("grant:" + checksum(tokens["refresh_token"])):
        response = refresh(signed_in, public_client.client_id, tokens["refresh_token"])

    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert response["Retry-After"] == "1"
    assert RefreshToken.objects.filter(revoked__isnull=True).count() == 1


@pytest.fixture
def tiny_client_bucket(settings):
    limits = dataclasses.replace(settings.MUSTER_CONFIG.rate_limit, user_rate=1, user_burst=2)
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, rate_limit=limits)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke"])
def test_an_authenticated_confidential_client_has_its_own_bucket(client, confidential_client, tiny_client_bucket, path):
    app, secret = confidential_client
    form = {"grant_type": "refresh_token", "refresh_token": "x", "token": "x", "client_id": app.client_id}

    answers = [client.post(path, {**form, "client_secret": secret}).status_code for _ in range(3)]

    assert answers[:2] != [429, 429] and answers[2] == 429


@pytest.mark.django_db
def test_strangers_without_the_secret_cannot_spend_a_clients_bucket(client, confidential_client, tiny_client_bucket):
    app, secret = confidential_client
    form = {"grant_type": "refresh_token", "refresh_token": "x", "client_id": app.client_id}

    strangers = [client.post("/oauth/token", {**form, "client_secret": "wrong"}).status_code for _ in range(5)]

    assert strangers == [401] * 5
    assert client.post("/oauth/token", {**form, "client_secret": secret}).status_code == 400
