"""Signing in at a real OIDC provider: the flow, what the provider is asked, users by (issuer, sub), failures."""

import dataclasses
import hashlib
import time

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client
from oauth2_provider.models import Grant

from oauth_server.models import UpstreamIdentity, UpstreamSession
from oauth_server.upstream import discovery
from oauth_server.upstream.provider import MAX_GROUPS
from oauth_server.upstream.sessions import PENDING_KEY
from tests.support.flow import exchange
from tests.support.tokens import family_of
from tests.upstream_flow import (
    CLIENT_ID,
    SUBJECT,
    back_from_provider,
    local,
    query_of,
    to_provider,
    upstream_code,
    use_provider,
)


def nothing_stored() -> bool:
    return not (
        UpstreamIdentity.objects.exists()
        or UpstreamSession.objects.exists()
        or Grant.objects.exists()
        or get_user_model().objects.exists()
    )


def test_a_user_signs_in_at_the_provider_and_the_code_carries_that_sign_in(upstream, public_client):
    upstream.set_user(SUBJECT, {"email": "alice@example.com", "email_verified": True, "name": "Alice", "groups": ["a"]})
    browser = Client()

    code, verifier, query = upstream_code(browser, public_client.client_id, upstream)
    tokens = exchange(browser, public_client.client_id, code, verifier).json()

    identity = UpstreamIdentity.objects.get()
    assert (identity.issuer, identity.subject) == (upstream.issuer, SUBJECT)
    assert (identity.user.email, identity.name, identity.groups) == ("alice@example.com", "Alice", ["a"])
    assert identity.user.username == SUBJECT and identity.user.email == "alice@example.com"
    session = UpstreamSession.objects.get()
    assert session.token_family == family_of(tokens) and session.grant is None
    assert query["iss"] == "http://127.0.0.1:8000"
    assert 0 < tokens["expires_in"] <= 1800
    assert "id_token" not in tokens  # exposeUpstreamIdToken is off by default


def test_the_provider_is_asked_with_pkce_nonce_our_callback_and_the_oidc_scopes(upstream, public_client):
    """The provider process checks the S256 verifier at the exchange, so every sign-in here also proves PKCE."""
    _, provider_url = to_provider(Client(), public_client.client_id)

    asked = query_of(provider_url)
    assert provider_url.startswith(upstream.issuer + "/oauth2/authorize?")
    assert asked["client_id"] == CLIENT_ID and asked["response_type"] == "code"
    assert asked["redirect_uri"] == "http://127.0.0.1:8000/oauth/callback"
    assert asked["scope"] == "openid profile email offline_access"
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
    assert len(asked["nonce"]) >= 32 and len(asked["state"]) >= 32


def test_dex_is_asked_for_groups_audiences_and_the_connector(settings, oidc_provider, public_client):
    use_provider(
        settings, oidc_provider, kind="dex", dex={"connector_id": "github", "required_audiences": ("kube", "argo")}
    )

    asked = query_of(to_provider(Client(), public_client.client_id)[1])

    assert asked["scope"].split() == [
        "openid",
        "profile",
        "email",
        "groups",
        "offline_access",
        "audience:server:client_id:kube",
        "audience:server:client_id:argo",
    ]
    assert asked["connector_id"] == "github"
    discovery.forget()


def test_google_is_asked_for_offline_access_with_consent_and_no_offline_access_or_groups_scope(
    settings, public_client, monkeypatch
):
    """Google itself cannot run here: its discovered endpoints are stood in for."""
    settings.MUSTER_CONFIG = dataclasses.replace(
        settings.MUSTER_CONFIG,
        provider="google",
        google=dataclasses.replace(settings.MUSTER_CONFIG.google, client_id="g-client", client_secret="g-secret"),
    )
    google = discovery.ProviderMetadata(
        authorization_endpoint="https://accounts.google.com/o/oauth2/v2/auth",
        token_endpoint="https://oauth2.googleapis.com/token",
        jwks_uri="https://www.googleapis.com/oauth2/v3/certs",
        userinfo_endpoint="https://openidconnect.googleapis.com/v1/userinfo",
        revocation_endpoint="https://oauth2.googleapis.com/revoke",
        signing_algorithms=("RS256",),
    )
    monkeypatch.setattr(discovery, "_metadata", google)

    provider_url = to_provider(Client(), public_client.client_id)[1]

    asked = query_of(provider_url)
    assert provider_url.startswith("https://accounts.google.com/o/oauth2/v2/auth?")
    assert asked["scope"] == "openid email profile"
    assert (asked["access_type"], asked["prompt"]) == ("offline", "consent")


def test_users_are_matched_by_subject_never_by_email(upstream, public_client):
    upstream.set_user("first", {"email": "same@example.com", "email_verified": True})
    upstream.set_user("second", {"email": "same@example.com", "email_verified": True})

    for sub in ("first", "second", "first"):
        upstream_code(Client(), public_client.client_id, upstream, sub)

    assert sorted(UpstreamIdentity.objects.values_list("subject", flat=True)) == ["first", "second"]
    assert get_user_model().objects.count() == 2


def test_an_unverified_email_is_not_kept_and_groups_are_capped(upstream, public_client):
    groups = [f"g{i}" for i in range(MAX_GROUPS + 50)]
    upstream.set_user(SUBJECT, {"email": "claimed@example.com", "email_verified": False, "groups": groups})

    upstream_code(Client(), public_client.client_id, upstream)

    identity = UpstreamIdentity.objects.get()
    assert identity.user.email == ""
    assert identity.groups == groups[:MAX_GROUPS]


def test_every_authorization_starts_with_a_fresh_provider_sign_in(upstream, public_client):
    browser = Client()
    upstream_code(browser, public_client.client_id, upstream)

    provider_url = to_provider(browser, public_client.client_id)[1]

    assert provider_url.startswith(upstream.issuer)


@pytest.mark.parametrize("mode", ["wrong-aud", "wrong-iss", "bad-signature", "nonce-mismatch", "alg-none"])
def test_an_id_token_that_fails_a_check_signs_no_one_in_and_the_client_hears_access_denied(
    upstream, public_client, mode, audit_log, caplog
):
    upstream.tamper(mode)
    browser = Client()
    _, provider_url = to_provider(browser, public_client.client_id, state="s" * 30)

    back = back_from_provider(browser, upstream, provider_url)

    assert back.status_code == 302
    answer = query_of(back["Location"])
    assert back["Location"].startswith("http://127.0.0.1/callback?")
    assert (answer["error"], answer["state"], answer["iss"]) == ("access_denied", "s" * 30, "http://127.0.0.1:8000")
    assert nothing_stored()
    assert "_auth_user_id" not in browser.session
    assert '"event": "upstream_sign_in_failed"' in caplog.text


def test_without_a_pending_client_the_failure_is_a_clear_page(upstream, public_client):
    upstream.tamper("bad-signature")
    browser = Client()
    sent = browser.get("/oauth/login")  # sign-in started here, not by an authorize request

    back = back_from_provider(browser, upstream, sent["Location"])

    assert back.status_code == 502
    assert b"signature does not verify" in back.content
    assert nothing_stored()


def test_a_provider_error_reaches_the_client_as_access_denied(upstream, public_client):
    browser = Client()
    _, provider_url = to_provider(browser, public_client.client_id, state="t" * 30)
    # The mock drops `state` when the user denies; a real provider sends it back, as here.
    provider_state = query_of(provider_url)["state"]

    back = browser.get(f"/oauth/callback?error=access_denied&state={provider_state}")

    answer = query_of(back["Location"])
    assert (answer["error"], answer["state"]) == ("access_denied", "t" * 30)
    assert nothing_stored()


def test_a_provider_that_fails_the_code_exchange_gives_access_denied_and_stores_nothing(upstream, public_client):
    upstream.token_failure(503)
    browser = Client()
    _, provider_url = to_provider(browser, public_client.client_id)

    back = back_from_provider(browser, upstream, provider_url)

    assert query_of(back["Location"])["error"] == "access_denied"
    assert nothing_stored()


def test_a_replayed_provider_answer_is_refused(upstream, public_client):
    browser = Client()
    _, provider_url = to_provider(browser, public_client.client_id)
    callback = local(upstream.sign_in(provider_url, SUBJECT))
    assert browser.get(callback).status_code == 302

    replayed = browser.get(callback, HTTP_ACCEPT="text/html")

    assert replayed.status_code == 400
    assert b"already used" in replayed.content
    assert UpstreamSession.objects.count() == 0  # the first answer's tokens wait for consent, in the session only


def test_an_answer_with_a_state_this_browser_never_sent_is_refused(upstream):
    answer = Client().get("/oauth/callback?code=abc&state=" + "x" * 32)

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"


def test_the_callback_does_not_exist_for_local_accounts(db):
    assert Client().get("/oauth/callback?code=abc&state=xyz").status_code == 404


def test_an_operator_disabled_user_cannot_sign_in_at_the_provider(upstream, public_client):
    upstream_code(Client(), public_client.client_id, upstream)
    get_user_model().objects.update(is_active=False)
    browser = Client()
    _, provider_url = to_provider(browser, public_client.client_id)

    back = back_from_provider(browser, upstream, provider_url)

    assert query_of(back["Location"])["error"] == "access_denied"
    assert "_auth_user_id" not in browser.session


def test_a_new_signing_key_at_the_provider_is_fetched_when_its_kid_first_appears(upstream, public_client):
    metadata = discovery.metadata()
    published = httpx.get(metadata.jwks_uri).json()["keys"]
    cache_key = "oidc-jwks:" + hashlib.sha256(metadata.jwks_uri.encode()).hexdigest()
    cache.set(cache_key, [{**key, "kid": "rotated-away"} for key in published])  # what we cached before a rotation

    upstream_code(Client(), public_client.client_id, upstream)

    assert UpstreamIdentity.objects.exists()
    assert [key["kid"] for key in cache.get(cache_key)] == [key["kid"] for key in published]


def test_a_provider_sign_in_left_at_the_consent_page_for_over_ten_minutes_must_be_done_again(upstream, public_client):
    browser = Client()
    _, provider_url = to_provider(browser, public_client.client_id)
    back = back_from_provider(browser, upstream, provider_url)
    session = browser.session
    session[PENDING_KEY] = {**session[PENDING_KEY], "until": time.time() - 1}
    session.save()

    again = browser.get(back["Location"])

    assert again.status_code == 302 and again["Location"].startswith("/oauth/login?next=")
