"""Upstream sessions per token family: capped expiry, refresh ordering, outages, revocation, sealing, /mcp."""

import base64
import dataclasses
import json
import os
import time
from datetime import timedelta

import httpx
import pytest
from asgiref.sync import async_to_sync
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.contrib.sessions.backends.cache import SessionStore
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, RequestFactory
from django.utils import timezone
from oauth2_provider.models import AccessToken, RefreshToken

from infra.locks import cache_lock
from mcp_gateway import bearer
from oauth_server import families
from oauth_server.models import UpstreamSession
from oauth_server.upstream import discovery, id_tokens, sealing
from oauth_server.upstream import sessions as upstream_sessions
from oauth_server.upstream.provider import configured
from tests.servers.oidc_provider import OidcProvider
from tests.servers.processes import free_port
from tests.support.flow import exchange, refresh
from tests.support.tokens import checksum, family_of
from tests.support.waiting import eventually, threads_finished
from tests.upstream_flow import CLIENT_ID, CLIENT_SECRET, SUBJECT, upstream_code, use_provider


def signed_in(provider, client_id: str) -> dict[str, str]:
    browser = Client()
    code, verifier, _ = upstream_code(browser, client_id, provider)
    answer = exchange(browser, client_id, code, verifier)
    assert answer.status_code == 200, answer.content
    return answer.json()


def session_of(tokens: dict[str, str]) -> UpstreamSession:
    return UpstreamSession.objects.select_related("identity").get(token_family=family_of(tokens))


def near_expiry(tokens: dict[str, str], seconds: int = 60) -> None:
    """The provider's token of this sign-in expires in `seconds`."""
    UpstreamSession.objects.filter(token_family=family_of(tokens)).update(
        expires_at=timezone.now() + timedelta(seconds=seconds)
    )


@pytest.fixture(scope="module")
def short_lived_provider():
    """A provider whose sign-in tokens live two minutes."""
    with OidcProvider(token_max_age=120) as provider:
        yield provider


def test_our_access_token_never_outlives_the_providers(settings, short_lived_provider, public_client):
    use_provider(settings, short_lived_provider)

    tokens = signed_in(short_lived_provider, public_client.client_id)

    assert 100 <= tokens["expires_in"] <= 120
    stored = AccessToken.objects.get(token_checksum=checksum(tokens["access_token"]))
    assert stored.expires <= timezone.now() + timedelta(seconds=121)
    discovery.forget()


def test_the_cap_is_never_zero_or_negative(upstream, public_client):
    tokens = signed_in(upstream, public_client.client_id)
    session = session_of(tokens)
    session.expires_at = timezone.now() - timedelta(minutes=1)

    assert upstream_sessions.capped_seconds(session, 1800) == 1


def test_a_refresh_far_from_the_providers_expiry_does_not_call_the_provider(upstream, public_client):
    tokens = signed_in(upstream, public_client.client_id)

    answer = refresh(Client(), public_client.client_id, tokens["refresh_token"])

    assert answer.status_code == 200
    assert upstream.counters()["refresh_token"] == 0


def test_a_provider_token_near_expiry_is_refreshed_first(upstream, public_client, audit_log, caplog):
    tokens = signed_in(upstream, public_client.client_id)
    near_expiry(tokens)

    answer = refresh(Client(), public_client.client_id, tokens["refresh_token"])

    assert answer.status_code == 200, answer.content
    assert upstream.counters()["refresh_token"] == 1
    assert session_of(tokens).expires_at > timezone.now() + timedelta(minutes=50)
    assert answer.json()["expires_in"] == 1800
    assert '"event": "upstream_token_refreshed"' in caplog.text


def test_a_provider_outage_leaves_our_refresh_token_usable(upstream, public_client):
    tokens = signed_in(upstream, public_client.client_id)
    near_expiry(tokens)
    upstream.token_failure(503)

    failed = refresh(Client(), public_client.client_id, tokens["refresh_token"])

    assert failed.status_code == 503
    assert failed.json()["error"] == "temporarily_unavailable" and failed["Retry-After"] == "5"
    upstream.token_failure(None)
    retried = refresh(Client(), public_client.client_id, tokens["refresh_token"])
    assert retried.status_code == 200, retried.content
    assert RefreshToken.objects.filter(token_family=family_of(tokens), revoked__isnull=True).count() == 1


def test_an_unreachable_provider_leaves_our_refresh_token_usable(upstream, public_client, monkeypatch):
    tokens = signed_in(upstream, public_client.client_id)
    near_expiry(tokens)
    closed = f"http://127.0.0.1:{free_port()}/token"
    monkeypatch.setattr(discovery, "_metadata", dataclasses.replace(discovery.metadata(), token_endpoint=closed))

    answer = refresh(Client(), public_client.client_id, tokens["refresh_token"])

    assert answer.status_code == 503
    assert RefreshToken.objects.get(token_checksum=checksum(tokens["refresh_token"])).revoked is None


def test_a_provider_that_ended_the_sign_in_revokes_the_family(upstream, public_client, audit_log, caplog):
    tokens = signed_in(upstream, public_client.client_id)
    near_expiry(tokens)
    upstream.revoke_user_tokens(SUBJECT)

    answer = refresh(Client(), public_client.client_id, tokens["refresh_token"])

    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    assert not RefreshToken.objects.filter(token_family=family_of(tokens), revoked__isnull=True).exists()
    assert not AccessToken.objects.filter(token_checksum=checksum(tokens["access_token"])).exists()
    assert not UpstreamSession.objects.exists()
    assert '"reason": "upstream-session-ended"' in caplog.text


def test_the_upstream_id_token_is_exposed_only_when_configured(upstream, settings, public_client):
    assert "id_token" not in signed_in(upstream, public_client.client_id)
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, expose_upstream_id_token=True)

    tokens = signed_in(upstream, public_client.client_id)
    refreshed = refresh(Client(), public_client.client_id, tokens["refresh_token"]).json()

    assert tokens["id_token"].count(".") == 2
    assert refreshed["id_token"] == tokens["id_token"]  # the provider gave no new one on refresh
    assert upstream_sessions.tokens(session_of(refreshed))["id_token"] == tokens["id_token"]


def test_refresh_upstream_session_refreshes_the_provider_token_without_rotating_ours(upstream, public_client):
    tokens = signed_in(upstream, public_client.client_id)
    before = session_of(tokens).expires_at

    families.refresh_upstream_session(family_of(tokens))

    assert upstream.counters()["refresh_token"] == 1
    assert session_of(tokens).refreshed is not None and session_of(tokens).expires_at >= before
    assert RefreshToken.objects.filter(token_family=family_of(tokens)).count() == 1
    assert refresh(Client(), public_client.client_id, tokens["refresh_token"]).status_code == 200


def test_refresh_upstream_session_refuses_unknown_and_revoked_families(upstream, public_client):
    tokens = signed_in(upstream, public_client.client_id)
    family = family_of(tokens)
    RefreshToken.objects.filter(token_family=family).update(revoked=timezone.now())

    with pytest.raises(families.RefreshSessionError):
        families.refresh_upstream_session(family)
    with pytest.raises(families.RefreshSessionError):
        families.refresh_upstream_session("00000000-0000-0000-0000-000000000000")
    assert upstream.counters()["refresh_token"] == 0


def test_manage_py_refreshsession(upstream, public_client, capsys):
    tokens = signed_in(upstream, public_client.client_id)

    call_command("refreshsession", str(family_of(tokens)))

    assert "refreshed the upstream sign-in" in capsys.readouterr().out
    upstream.revoke_user_tokens(SUBJECT)
    with pytest.raises(CommandError, match="ended this sign-in"):
        call_command("refreshsession", str(family_of(tokens)))
    with pytest.raises(CommandError, match="not a token family id"):
        call_command("refreshsession", "nope")
    assert not RefreshToken.objects.filter(token_family=family_of(tokens), revoked__isnull=True).exists()


def test_the_admin_shows_and_refreshes_an_upstream_sign_in(upstream, public_client, admin_client):
    upstream.set_user(SUBJECT, {"email": "alice@example.com", "email_verified": True})
    tokens = signed_in(upstream, public_client.client_id)
    family_row = RefreshToken.objects.get(token_checksum=checksum(tokens["refresh_token"]))
    listed = admin_client.get("/admin/oauth_server/tokenfamily/")
    assert b"Provider token until" in listed.content
    assert listed.context["cl"].result_list[0].upstream_expires == session_of(tokens).expires_at

    answer = admin_client.post(
        "/admin/oauth_server/tokenfamily/",
        {"action": "refresh_upstream_sessions", "_selected_action": [family_row.pk]},
        follow=True,
    )

    assert b"upstream sign-in refreshed" in answer.content
    assert upstream.counters()["refresh_token"] == 1
    identities = admin_client.get("/admin/oauth_server/upstreamidentity/")
    assert SUBJECT.encode() in identities.content and b"alice@example.com" in identities.content


def test_stored_provider_tokens_are_unreadable_without_the_key(upstream, settings, public_client):
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, expose_upstream_id_token=True)
    tokens = signed_in(upstream, public_client.client_id)
    stored = bytes(UpstreamSession.objects.values_list("sealed_tokens", flat=True).get())

    assert tokens["id_token"].encode() not in stored
    assert b"refresh_token" not in stored and b"access_token" not in stored
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, encryption_key=b"k" * 32)
    with pytest.raises(sealing.SealError):
        upstream_sessions.tokens(session_of(tokens))


def test_pending_tokens_in_the_browser_session_are_sealed_too(upstream, public_client):
    from tests.upstream_flow import back_from_provider, to_provider

    browser = Client()
    _, provider_url = to_provider(browser, public_client.client_id)
    back_from_provider(browser, upstream, provider_url)

    pending = browser.session[upstream_sessions.PENDING_KEY]
    assert set(pending) == {"identity", "user", "sealed", "expires_at", "until"}
    assert b"refresh_token" not in base64.b64decode(pending["sealed"])


def test_stored_provider_tokens_open_after_a_rotation_that_lists_the_old_key(upstream, settings, public_client):
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, encryption_key=OLD_KEY)
    tokens = signed_in(upstream, public_client.client_id)
    held = upstream_sessions.tokens(session_of(tokens))

    rotate(settings, NEW_KEY, OLD_KEY)

    assert upstream_sessions.tokens(session_of(tokens)) == held


# --- sealing: a format byte and key id, old values and rotation ---

OLD_KEY, NEW_KEY, OTHER_KEY = b"o" * 32, b"n" * 32, b"x" * 32
VALUES = {"refresh_token": "r-123", "id_token": "i-456"}


def rotate(settings, key: bytes | None, *previous: bytes) -> None:
    settings.MUSTER_CONFIG = dataclasses.replace(
        settings.MUSTER_CONFIG, encryption_key=key, previous_encryption_keys=previous
    )


def sealed_before_key_ids(key: bytes, values: dict, owner: str) -> bytes:
    """The format of earlier releases: nonce, then AES-256-GCM with the owner as associated data."""
    nonce = os.urandom(sealing.NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, json.dumps(values).encode(), owner.encode())


def test_a_sealed_value_names_its_format_and_key(settings):
    rotate(settings, NEW_KEY)

    blob = sealing.seal(VALUES, "owner")

    assert blob[:1] == sealing.FORMAT
    assert blob[1 : sealing.HEADER_BYTES] == sealing.key_id(NEW_KEY)
    assert sealing.unseal(blob, "owner") == VALUES


def test_a_sealed_value_does_not_open_for_another_owner(settings):
    rotate(settings, NEW_KEY)

    with pytest.raises(sealing.SealError):
        sealing.unseal(sealing.seal(VALUES, "owner"), "someone else")


@pytest.mark.parametrize("key", [NEW_KEY, None], ids=["encryptionKey", "derived from secretKey"])
def test_a_value_sealed_before_key_ids_still_opens(settings, key):
    rotate(settings, key)
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"muster upstream tokens v1")
    current = key or derived.derive(settings.SECRET_KEY.encode())  # as earlier releases derived it

    assert sealing.unseal(sealed_before_key_ids(current, VALUES, "owner"), "owner") == VALUES


def test_a_value_sealed_before_key_ids_opens_even_when_its_nonce_looks_like_a_header(settings):
    rotate(settings, NEW_KEY)
    nonce = sealing.FORMAT + os.urandom(sealing.NONCE_BYTES - 1)
    legacy = nonce + AESGCM(NEW_KEY).encrypt(nonce, json.dumps(VALUES).encode(), b"owner")

    assert sealing.unseal(legacy, "owner") == VALUES


def test_after_a_rotation_values_sealed_under_a_listed_old_key_open_and_new_ones_use_the_new_key(settings):
    rotate(settings, OLD_KEY)
    blob = sealing.seal(VALUES, "owner")
    legacy = sealed_before_key_ids(OLD_KEY, VALUES, "owner")

    rotate(settings, NEW_KEY, OLD_KEY)

    assert sealing.unseal(blob, "owner") == VALUES
    assert sealing.unseal(legacy, "owner") == VALUES
    assert sealing.seal(VALUES, "owner")[1 : sealing.HEADER_BYTES] == sealing.key_id(NEW_KEY)


def test_after_a_rotation_that_does_not_list_the_old_key_its_values_are_refused_by_key_id(settings):
    rotate(settings, OLD_KEY)
    blob = sealing.seal(VALUES, "owner")
    legacy = sealed_before_key_ids(OLD_KEY, VALUES, "owner")

    rotate(settings, NEW_KEY, OTHER_KEY)

    with pytest.raises(sealing.SealError, match=f"key id {sealing.key_id(OLD_KEY).hex()}.*previousEncryptionKeys"):
        sealing.unseal(blob, "owner")
    with pytest.raises(sealing.SealError):
        sealing.unseal(legacy, "owner")


@pytest.mark.parametrize("position", [0, 1, sealing.HEADER_BYTES - 1], ids=["format", "key id", "key id end"])
def test_an_altered_header_does_not_open(settings, position):
    rotate(settings, NEW_KEY, OLD_KEY)
    blob = bytearray(sealing.seal(VALUES, "owner"))
    blob[position] ^= 1

    with pytest.raises(sealing.SealError):
        sealing.unseal(bytes(blob), "owner")


def test_a_key_id_changed_to_another_listed_key_does_not_open(settings):
    rotate(settings, NEW_KEY, OLD_KEY)
    blob = sealing.seal(VALUES, "owner")

    relabelled = sealing.FORMAT + sealing.key_id(OLD_KEY) + blob[sealing.HEADER_BYTES :]

    with pytest.raises(sealing.SealError):
        sealing.unseal(relabelled, "owner")


@pytest.mark.django_db(transaction=True)  # the lookup runs on the gateway's database thread
def test_mcp_apps_see_the_upstream_subject_groups_and_id_token(upstream, settings, public_client):
    upstream.set_user(SUBJECT, {"groups": ["platform"]})
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, expose_upstream_id_token=True)
    tokens = signed_in(upstream, public_client.client_id)

    identity = async_to_sync(bearer._from_database)(checksum(tokens["access_token"]))

    assert identity.subject == SUBJECT and identity.groups == ("platform",)
    assert async_to_sync(identity.id_token)() == tokens["id_token"]
    shared = bearer._dumps(identity)
    assert tokens["id_token"] not in shared and "id_token" not in shared  # the cache never holds it, even sealed
    assert bearer._loads(shared.encode()) == identity


def test_pruneupstream_deletes_provider_tokens_nothing_holds(upstream, public_client, capsys):
    kept = signed_in(upstream, public_client.client_id)
    ended = signed_in(upstream, public_client.client_id)
    RefreshToken.objects.filter(token_family=family_of(ended)).update(revoked=timezone.now())
    unclaimed = session_of(kept)
    unclaimed.pk, unclaimed.token_family = None, None
    unclaimed.save()
    UpstreamSession.objects.filter(pk=unclaimed.pk).update(created=timezone.now() - timedelta(days=2))

    call_command("pruneupstream", "--dry-run")
    assert "would delete 2 stale upstream sign-ins" in capsys.readouterr().out
    call_command("pruneupstream")

    assert list(UpstreamSession.objects.values_list("token_family", flat=True)) == [family_of(kept)]


@pytest.mark.django_db(transaction=True)  # the lookup runs on the gateway's database thread
def test_after_a_provider_refresh_mcp_apps_get_the_new_id_token_at_once(upstream, public_client):
    tokens = signed_in(upstream, public_client.client_id)
    identity = async_to_sync(bearer.access_tokens.verify)(tokens["access_token"])
    assert checksum(tokens["access_token"]) in bearer._local  # the validation is cached, and stays so

    families.refresh_upstream_session(family_of(tokens))
    # The provider gives no new id_token on refresh; as if it had, the refreshed sign-in now holds another one.
    session = session_of(tokens)
    renewed = {**upstream_sessions.tokens(session), "id_token": "renewed.id.token"}
    UpstreamSession.objects.filter(pk=session.pk).update(
        sealed_tokens=sealing.seal(renewed, session.identity.sealing_owner)
    )

    again = async_to_sync(bearer.access_tokens.verify)(tokens["access_token"])
    assert again == identity
    assert async_to_sync(again.id_token)() == "renewed.id.token"


def test_ending_a_sign_in_here_revokes_its_refresh_token_at_the_provider(
    upstream, public_client, django_capture_on_commit_callbacks
):
    tokens = signed_in(upstream, public_client.client_id)
    at_provider = upstream_sessions.tokens(session_of(tokens))["refresh_token"]

    with django_capture_on_commit_callbacks(execute=True):
        call_command("revokefamily", str(family_of(tokens)))

    assert eventually(lambda: upstream.revocations() == ["refresh_token"])
    reused = httpx.post(
        upstream.token_endpoint,
        data={"grant_type": "refresh_token", "refresh_token": at_provider},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert reused.status_code == 400


def test_a_sign_in_the_provider_ended_is_not_revoked_there_again(
    upstream, public_client, django_capture_on_commit_callbacks
):
    tokens = signed_in(upstream, public_client.client_id)
    near_expiry(tokens)
    upstream.revoke_user_tokens(SUBJECT)

    with django_capture_on_commit_callbacks(execute=True):
        refresh(Client(), public_client.client_id, tokens["refresh_token"])

    assert threads_finished("upstream-revocation")  # whatever was started in the background has run
    assert upstream.revocations() == []


def without_provider_refresh_token(tokens: dict[str, str], seconds_left: int) -> None:
    """The provider gave this sign-in no refresh token, and its token has `seconds_left` (negative: expired)."""
    session = session_of(tokens)
    held = upstream_sessions.tokens(session)
    session.sealed_tokens = sealing.seal({**held, "refresh_token": None}, session.identity.sealing_owner)
    session.expires_at = timezone.now() + timedelta(seconds=seconds_left)
    session.save()


def test_without_a_provider_refresh_token_our_tokens_end_with_the_providers(upstream, public_client):
    tokens = signed_in(upstream, public_client.client_id)
    without_provider_refresh_token(tokens, 60)

    answer = refresh(Client(), public_client.client_id, tokens["refresh_token"])

    assert answer.status_code == 200 and answer.json()["expires_in"] <= 60
    assert upstream.counters()["refresh_token"] == 0


def test_without_a_provider_refresh_token_an_expired_sign_in_revokes_the_family(upstream, public_client):
    tokens = signed_in(upstream, public_client.client_id)
    without_provider_refresh_token(tokens, -1)

    answer = refresh(Client(), public_client.client_id, tokens["refresh_token"])

    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    assert not RefreshToken.objects.filter(token_family=family_of(tokens), revoked__isnull=True).exists()


def test_a_refresh_waiting_too_long_for_the_users_provider_refresh_gets_503(upstream, public_client, monkeypatch):
    tokens = signed_in(upstream, public_client.client_id)
    near_expiry(tokens)
    monkeypatch.setattr(upstream_sessions, "LOCK_WAIT_SECONDS", 0.1)

    with cache_lock(f"upstream-refresh:{session_of(tokens).identity.user_id}"):  # another replica is refreshing
        answer = refresh(Client(), public_client.client_id, tokens["refresh_token"])

    assert answer.status_code == 503
    assert RefreshToken.objects.get(token_checksum=checksum(tokens["refresh_token"])).revoked is None


def test_a_refreshed_id_token_must_name_the_same_user(upstream, settings, public_client):
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, expose_upstream_id_token=True)
    id_token = signed_in(upstream, public_client.client_id)["id_token"]
    provider, metadata = configured(), discovery.metadata()

    assert id_tokens.verify(id_token, provider, metadata, nonce=None, subject=SUBJECT)["sub"] == SUBJECT
    with pytest.raises(id_tokens.IdTokenError, match="another user"):
        id_tokens.verify(id_token, provider, metadata, nonce=None, subject="someone-else")


def test_an_unknown_signing_key_is_refused_and_refetched_at_most_once_in_ten_seconds(
    upstream, public_client, monkeypatch
):
    signed_in(upstream, public_client.client_id)  # the key set is cached now
    fetches = []
    real_fetch = id_tokens._fetch_keys
    monkeypatch.setattr(id_tokens, "_fetch_keys", lambda *args: fetches.append(1) or real_fetch(*args))

    for _ in range(3):
        with pytest.raises(id_tokens.IdTokenError, match="does not publish"):
            id_tokens.signing_key(discovery.metadata(), configured(), "never-published", "RS256")

    assert len(fetches) == 1


def test_pending_provider_tokens_belong_only_to_the_user_who_signed_in(upstream, public_client, bob):
    request = RequestFactory().get("/oauth/authorize")
    request.session = SessionStore()
    request.user = bob
    request.session[upstream_sessions.PENDING_KEY] = {"identity": 1, "user": bob.pk + 1, "until": time.time() + 60}

    assert upstream_sessions.pending(request) is None
    request.session[upstream_sessions.PENDING_KEY]["user"] = bob.pk
    assert upstream_sessions.pending(request) is not None
