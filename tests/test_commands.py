"""Management commands: createclient, revokefamily, revokeuser, welcome, and `check` on a bad config."""

import io
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.hashers import identify_hasher
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from oauth2_provider.models import AccessToken, Application, RefreshToken

from tests.support.authorize import REDIRECT_URI
from tests.support.flow import basic, consent_form, exchange, issue_code, refresh, sign_in
from tests.support.tokens import checksum, family_of

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def live_families() -> set[uuid.UUID]:
    return set(RefreshToken.objects.filter(revoked__isnull=True).values_list("token_family", flat=True))


def code_for(user, client_id: str) -> tuple[Client, str, str]:
    browser = Client()
    browser.force_login(user)
    code, verifier, _ = issue_code(browser, client_id)
    return browser, code, verifier


@pytest.fixture
def confidential(db) -> tuple[Application, str]:
    """A confidential client registered with createclient; returns it and the secret it printed."""
    printed = json.loads(
        run("createclient", "--name", "CLI", "--redirect-uri", REDIRECT_URI, "--confidential", "--json")
    )
    return Application.objects.get(client_id=printed["client_id"]), printed["client_secret"]


# --- createclient ---


@pytest.mark.django_db
def test_createclient_registers_a_public_manual_client_and_prints_json():
    printed = json.loads(run("createclient", "--name", "My tool", "--redirect-uri", REDIRECT_URI, "--json"))

    client = Application.objects.get()
    assert printed == {
        "client_id": client.client_id,
        "client_type": "public",
        "name": "My tool",
        "issuer": "http://127.0.0.1:8000",
    }
    assert client.client_type == Application.CLIENT_PUBLIC
    assert client.registration_source == Application.RegistrationSource.MANUAL
    assert client.authorization_grant_type == Application.GRANT_AUTHORIZATION_CODE
    assert client.redirect_uris == REDIRECT_URI


@pytest.mark.django_db
def test_createclient_accepts_several_redirect_uris():
    run(
        "createclient",
        "--name",
        "Two",
        "--redirect-uri",
        REDIRECT_URI,
        "--redirect-uri",
        "https://app.example.com/cb",
    )

    assert Application.objects.get().redirect_uris.split() == [REDIRECT_URI, "https://app.example.com/cb"]


@pytest.mark.django_db
def test_createclient_plain_output_names_the_client_id_the_issuer_and_its_discovery_url():
    output = run("createclient", "--name", "Plain", "--redirect-uri", REDIRECT_URI)

    assert output.splitlines()[:3] == [
        f"client_id: {Application.objects.get().client_id}",
        "issuer: http://127.0.0.1:8000",
        "discovery: http://127.0.0.1:8000/.well-known/oauth-authorization-server",
    ]


@pytest.mark.django_db
def test_createclient_prints_an_authorization_request_and_code_exchange_that_work(user):
    output = run("createclient", "--name", "Try me", "--redirect-uri", REDIRECT_URI)
    authorize_url = re.search(r"^  (http://127\.0\.0\.1:8000/oauth/authorize\?\S+)$", output, re.M)[1]
    verifier = re.search(r"-d code_verifier=(\S+) ", output)[1]
    browser = Client()
    browser.force_login(user)

    page = browser.get(authorize_url.removeprefix("http://127.0.0.1:8000"))
    assert page.status_code == 200, page.content
    allowed = browser.post("/oauth/authorize", {**consent_form(page), "allow": "Authorize"})
    code = parse_qs(urlsplit(allowed["Location"]).query)["code"][0]
    tokens = browser.post(
        "/oauth/token",
        {
            "grant_type": "authorization_code",
            "client_id": Application.objects.get().client_id,
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
    )

    assert tokens.status_code == 200, tokens.content
    assert f"--data-urlencode redirect_uri={REDIRECT_URI}" in output


@pytest.mark.django_db
def test_createclient_example_for_a_confidential_client_uses_basic_auth_with_a_placeholder():
    output = run(
        "createclient", "--name", "Portal", "--redirect-uri", "https://portal.example.com/cb", "--confidential"
    )

    client_id = Application.objects.get().client_id
    assert f'curl -u "{client_id}:<client_secret>" -d grant_type=authorization_code' in output


@pytest.mark.django_db
def test_createclient_confidential_prints_the_secret_once_and_stores_it_hashed(confidential):
    client, secret = confidential

    assert client.client_type == Application.CLIENT_CONFIDENTIAL
    assert client.registration_source == Application.RegistrationSource.MANUAL
    assert len(secret) >= 32
    assert client.client_secret.startswith("muster_client_secret_sha256$")
    assert secret not in client.client_secret


@pytest.mark.django_db
def test_createclient_confidential_plain_output_shows_the_secret_with_a_warning():
    output = run("createclient", "--name", "CLI", "--redirect-uri", REDIRECT_URI, "--confidential")

    secret = re.search(r"^client_secret: (\S+)$", output, re.MULTILINE)[1]
    assert "shown this once" in output
    assert Application.objects.get().client_secret.startswith("muster_client_secret_sha256$")
    assert secret not in Application.objects.get().client_secret


@pytest.mark.django_db
def test_confidential_client_from_createclient_gets_tokens_with_client_secret_post(user, confidential):
    client, secret = confidential
    browser, code, verifier = code_for(user, client.client_id)

    answer = exchange(browser, client.client_id, code, verifier, client_secret=secret)

    assert answer.status_code == 200, answer.content
    assert RefreshToken.objects.filter(application=client).count() == 1


@pytest.mark.django_db
def test_confidential_client_from_createclient_gets_tokens_with_client_secret_basic(user, confidential):
    client, secret = confidential
    browser, code, verifier = code_for(user, client.client_id)

    auth = basic(client.client_id, secret)

    answer = exchange(browser, client.client_id, code, verifier, headers={"Authorization": auth})

    assert answer.status_code == 200, answer.content
    assert RefreshToken.objects.filter(application=client).count() == 1


@pytest.mark.django_db
def test_confidential_client_with_a_wrong_secret_gets_invalid_client_and_no_tokens(user, confidential):
    client, secret = confidential
    browser, code, verifier = code_for(user, client.client_id)

    post = exchange(browser, client.client_id, code, verifier, client_secret=secret + "x")
    basic_answer = exchange(
        browser, client.client_id, code, verifier, headers={"Authorization": basic(client.client_id, "wrong" + secret)}
    )

    for answer in (post, basic_answer):
        assert answer.status_code == 401, answer.content
        assert answer.json()["error"] == "invalid_client"
    assert not AccessToken.objects.exists()
    assert not RefreshToken.objects.exists()


@pytest.mark.django_db
def test_confidential_client_without_its_secret_gets_invalid_client_and_no_tokens(user, confidential):
    client, _ = confidential
    browser, code, verifier = code_for(user, client.client_id)

    answer = exchange(browser, client.client_id, code, verifier)

    assert answer.status_code == 401, answer.content
    assert answer.json()["error"] == "invalid_client"
    assert not AccessToken.objects.exists()
    assert not RefreshToken.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "uri",
    [
        "http://app.example.com/callback",
        "http://10.0.0.5/callback",
        "https://app.example.com/callback#fragment",
        "http://127.0.0.1/callback#",
        "javascript://example.com/%0Aalert(1)",
        "ftp://files.example.com/cb",
        "not a uri",
    ],
)
def test_createclient_refuses_a_bad_redirect_uri_and_stores_nothing(uri):
    with pytest.raises(CommandError):
        run("createclient", "--name", "Bad", "--redirect-uri", uri, "--json")

    assert not Application.objects.exists()


@pytest.mark.django_db
def test_createclient_refuses_a_bad_redirect_uri_among_good_ones_and_stores_nothing():
    with pytest.raises(CommandError):
        run(
            "createclient",
            "--name",
            "Bad",
            "--redirect-uri",
            REDIRECT_URI,
            "--redirect-uri",
            "http://evil.com/cb",
        )

    assert not Application.objects.exists()


@pytest.mark.django_db
def test_createclient_refuses_public_and_confidential_together():
    with pytest.raises((CommandError, SystemExit)):
        run("createclient", "--name", "Both", "--redirect-uri", REDIRECT_URI, "--public", "--confidential")

    assert not Application.objects.exists()


@pytest.mark.django_db
def test_createclient_requires_a_redirect_uri():
    with pytest.raises((CommandError, SystemExit)):
        run("createclient", "--name", "Nowhere")

    assert not Application.objects.exists()


# --- revokefamily ---


@pytest.mark.django_db
def test_revokefamily_revokes_the_family_so_its_refresh_token_fails(user, public_client):
    tokens = sign_in(user, public_client.client_id, refreshes=1)
    family = family_of(tokens)

    output = run("revokefamily", str(family))

    assert output.strip() == f"revoked token family {family}"
    assert not RefreshToken.objects.filter(token_family=family, revoked__isnull=True).exists()
    assert not AccessToken.objects.filter(token_checksum=checksum(tokens["access_token"])).exists()
    answer = refresh(Client(), public_client.client_id, tokens["refresh_token"])
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


@pytest.mark.django_db
def test_revokefamily_leaves_other_families_working(user, public_client):
    doomed = family_of(sign_in(user, public_client.client_id))
    kept_tokens = sign_in(user, public_client.client_id)

    run("revokefamily", str(doomed))

    assert live_families() == {family_of(kept_tokens)}
    assert refresh(Client(), public_client.client_id, kept_tokens["refresh_token"]).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("family", [str(uuid.uuid4()), "not-a-uuid", "", "'; DROP TABLE x; --"])
def test_revokefamily_refuses_an_unknown_or_malformed_id_and_changes_nothing(user, public_client, family):
    tokens = sign_in(user, public_client.client_id)
    before = live_families()

    with pytest.raises(CommandError):
        run("revokefamily", family)

    assert live_families() == before == {family_of(tokens)}
    assert AccessToken.objects.filter(token_checksum=checksum(tokens["access_token"])).exists()


# --- revokeuser ---


@pytest.mark.django_db
def test_revokeuser_revokes_every_family_of_the_user_and_leaves_others(user, bob, public_client):
    alice_tokens = [sign_in(user, public_client.client_id, refreshes=n) for n in range(2)]
    bob_tokens = sign_in(bob, public_client.client_id)

    output = run("revokeuser", "alice")

    assert output.strip() == "revoked 2 token families of alice"
    assert not RefreshToken.objects.filter(user=user, revoked__isnull=True).exists()
    assert not AccessToken.objects.filter(user=user).exists()
    for tokens in alice_tokens:
        answer = refresh(Client(), public_client.client_id, tokens["refresh_token"])
        assert answer.status_code == 400
        assert answer.json()["error"] == "invalid_grant"
    assert live_families() == {family_of(bob_tokens)}
    assert refresh(Client(), public_client.client_id, bob_tokens["refresh_token"]).status_code == 200


@pytest.mark.django_db
def test_revokeuser_refuses_an_unknown_user_and_changes_nothing(user, public_client):
    sign_in(user, public_client.client_id)
    before = live_families()

    with pytest.raises(CommandError):
        run("revokeuser", "mallory")

    assert live_families() == before
    assert AccessToken.objects.count() == 1


# --- welcome ---


@pytest.mark.django_db
def test_welcome_on_a_fresh_site_creates_admin_with_a_printed_password_that_works(django_user_model):
    output = run("welcome")

    password = re.search(r"password: (\S+)", output)[1]
    admin = authenticate(username="admin", password=password)
    assert admin is not None
    assert admin.is_superuser and admin.is_staff
    assert identify_hasher(admin.password) and password not in admin.password  # stored hashed
    assert "manage.py changepassword admin" in output
    assert django_user_model.objects.count() == 1


@pytest.mark.django_db
def test_welcome_says_where_the_site_the_admin_and_the_mcp_url_are_and_what_to_try():
    output = run("welcome")

    for line in [
        "Front door  http://127.0.0.1:8000/",
        "MCP URL     http://127.0.0.1:8000/mcp",
        "Admin       http://127.0.0.1:8000/admin/",
        "Your apps   http://127.0.0.1:8000/account",
        "claude mcp add --transport http muster http://127.0.0.1:8000/mcp",
    ]:
        assert line in output, output


@pytest.mark.django_db
def test_welcome_a_second_time_creates_nothing_and_shows_no_password(django_user_model):
    password = re.search(r"password: (\S+)", run("welcome"))[1]

    output = run("welcome")

    assert password not in output and "password:" not in output
    assert "Admin user: admin" in output
    assert django_user_model.objects.count() == 1
    assert authenticate(username="admin", password=password) is not None


@pytest.mark.django_db
def test_welcome_leaves_a_site_that_already_has_a_superuser_alone(django_user_model):
    django_user_model.objects.create_superuser(username="root", password="a long existing passphrase")

    output = run("welcome")

    assert "Admin user: root" in output
    assert not django_user_model.objects.filter(username="admin").exists()


# --- configuration errors stop `manage.py check` ---


def manage_check(**env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE") and not k.startswith("MUSTER_")
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_manage_check_passes_with_the_default_configuration():
    result = manage_check()

    assert result.returncode == 0, result.stdout + result.stderr


def test_manage_check_fails_on_a_plain_http_base_url():
    result = manage_check(MUSTER_BASE_URL="http://example.com")

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "baseUrl" in output
    assert "https" in output
    assert "muster.E001" in output


def test_manage_check_fails_on_a_session_duration_in_days(tmp_path):
    config = tmp_path / "muster.yaml"
    config.write_text("aggregator:\n  oauthServer:\n    sessionDuration: 30d\n")

    result = manage_check(MUSTER_CONFIG=str(config))

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "sessionDuration" in output


@pytest.mark.django_db
def test_pruneclients_deletes_only_old_unused_dcr_clients(user, public_client):
    from datetime import timedelta

    from django.utils import timezone

    old = Application.objects.create(
        name="old dcr",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="http://127.0.0.1/callback",
        registration_source=Application.RegistrationSource.DCR,
    )
    in_use = Application.objects.create(
        name="used dcr",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="http://127.0.0.1/callback",
        registration_source=Application.RegistrationSource.DCR,
    )
    sign_in(user, in_use.client_id)
    Application.objects.filter(pk__in=[old.pk, in_use.pk]).update(created=timezone.now() - timedelta(days=40))

    output = run("pruneclients", "--unused-days", "30")

    assert "deleted 1 " in output
    assert not Application.objects.filter(pk=old.pk).exists()
    assert Application.objects.filter(pk=in_use.pk).exists()
    assert Application.objects.filter(pk=public_client.pk).exists()  # manual clients are never pruned


@pytest.mark.django_db
def test_pruneclients_refuses_a_nonsense_age():
    with pytest.raises(CommandError):
        run("pruneclients", "--unused-days", "0")
