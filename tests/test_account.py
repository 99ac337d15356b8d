"""The account page's rules: only the user's own live apps, one disconnect per form, sign-out everywhere, sign-out."""

import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from oauth2_provider.models import AccessToken, RefreshToken

from tests.support.flow import sign_in
from tests.support.tokens import checksum, family_of

ACCOUNT = "/account"
DISCONNECT = "/account/disconnect"
EVERYWHERE = "/account/sign-out-everywhere"
SIGN_OUT = "/oauth/logout"
HTML = {"HTTP_ACCEPT": "text/html"}

pytestmark = pytest.mark.django_db


def signed_in(user, *, csrf_checks: bool = False) -> Client:
    browser = Client(enforce_csrf_checks=csrf_checks)
    browser.force_login(user)
    return browser


def family(tokens: dict[str, str]) -> str:
    return str(family_of(tokens))


def live_families(user) -> set[str]:
    rows = RefreshToken.objects.filter(user=user, revoked__isnull=True).values_list("token_family", flat=True)
    return {str(row) for row in rows}


def audit_lines(caplog) -> list[dict]:
    return [json.loads(record.getMessage()) for record in caplog.records if record.name == "muster.audit"]


# --- the page ---


def test_a_stranger_is_sent_to_sign_in_and_back(client):
    response = client.get(ACCOUNT)

    assert response.status_code == 302
    assert response["Location"] == "/oauth/login?next=/account"


def test_the_page_lists_the_users_live_apps_only(user, bob, public_client):
    kept = sign_in(user, public_client.client_id, refreshes=2)
    ended = sign_in(user, public_client.client_id)
    RefreshToken.objects.get(token_checksum=checksum(ended["refresh_token"])).revoke()
    sign_in(bob, public_client.client_id)

    response = signed_in(user).get(ACCOUNT)

    assert response.status_code == 200
    listed = response.context["families"]
    assert [str(row.token_family) for row in listed] == [family(kept)]
    assert listed[0].redirect_hosts == ["127.0.0.1"]
    assert listed[0].application == public_client
    assert response.content.decode().count('name="family"') == 1


def test_the_page_costs_the_same_queries_for_one_app_or_five(user, public_client, django_assert_num_queries):
    sign_in(user, public_client.client_id)
    browser = signed_in(user)
    with CaptureQueriesContext(connection) as one:
        browser.get(ACCOUNT)
    for_one_app = len(one.captured_queries)  # read now: the next request empties the log
    for _ in range(4):
        sign_in(user, public_client.client_id)

    with django_assert_num_queries(for_one_app):
        response = browser.get(ACCOUNT)

    assert len(response.context["families"]) == 5


# --- disconnecting one app ---


def test_disconnect_revokes_that_app_only_and_audits_it(user, public_client, caplog, audit_log):
    gone, kept = sign_in(user, public_client.client_id), sign_in(user, public_client.client_id)

    response = signed_in(user).post(DISCONNECT, {"family": family(gone)})

    assert response.status_code == 303
    assert response["Location"] == ACCOUNT
    assert live_families(user) == {family(kept)}
    assert not AccessToken.objects.filter(token_checksum=checksum(gone["access_token"])).exists()
    revoked = [line for line in audit_lines(caplog) if line["event"] == "family_revoked"]
    assert [(line["family"], line["reason"]) for line in revoked] == [(family(gone), "user-disconnected")]


def test_disconnect_of_another_users_app_is_not_found_and_changes_nothing(user, bob, public_client):
    bobs = sign_in(bob, public_client.client_id)

    response = signed_in(user).post(DISCONNECT, {"family": family(bobs)}, **HTML)

    assert response.status_code == 404
    assert "You have no connected app like this." in response.content.decode()
    assert live_families(bob) == {family(bobs)}


def test_disconnect_of_an_app_already_disconnected_is_not_found(user, public_client):
    tokens = sign_in(user, public_client.client_id)
    browser = signed_in(user)
    browser.post(DISCONNECT, {"family": family(tokens)})

    response = browser.post(DISCONNECT, {"family": family(tokens)})

    assert response.status_code == 404


@pytest.mark.parametrize("form", [{}, {"family": ""}, {"family": "not-a-uuid"}, {"family": "1' OR '1'='1"}])
def test_a_malformed_disconnect_form_is_a_bad_request_and_changes_nothing(user, public_client, form):
    tokens = sign_in(user, public_client.client_id)

    response = signed_in(user).post(DISCONNECT, form)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert live_families(user) == {family(tokens)}


def test_a_disconnect_form_without_its_csrf_token_is_refused_and_changes_nothing(user, public_client):
    tokens = sign_in(user, public_client.client_id)

    response = signed_in(user, csrf_checks=True).post(DISCONNECT, {"family": family(tokens)}, **HTML)

    assert response.status_code == 403
    assert "This form has expired" in response.content.decode()
    assert live_families(user) == {family(tokens)}


def test_disconnect_when_signed_out_sends_to_sign_in_and_changes_nothing(client, user, public_client):
    tokens = sign_in(user, public_client.client_id)

    response = client.post(DISCONNECT, {"family": family(tokens)})

    assert response.status_code == 302
    assert response["Location"].startswith("/oauth/login?next=/account")
    assert live_families(user) == {family(tokens)}


@pytest.mark.parametrize("path", [DISCONNECT, EVERYWHERE])
def test_the_account_actions_refuse_a_get(user, path):
    assert signed_in(user).get(path).status_code == 405


# --- signing out everywhere ---


def test_sign_out_everywhere_revokes_every_app_of_the_user_and_ends_the_session(
    user, bob, public_client, caplog, audit_log
):
    mine = [sign_in(user, public_client.client_id) for _ in range(2)]
    bobs = sign_in(bob, public_client.client_id)
    browser = signed_in(user)

    response = browser.post(EVERYWHERE)

    assert response.status_code == 303
    assert response["Location"] == SIGN_OUT
    assert live_families(user) == set()
    assert live_families(bob) == {family(bobs)}
    assert "_auth_user_id" not in browser.session
    events = [(line["event"], line.get("reason")) for line in audit_lines(caplog)]
    assert events.count(("family_revoked", "user-sign-out")) == len(mine)
    assert ("signed_out", None) in events
    page = browser.get(SIGN_OUT)
    assert "2 apps were disconnected" in page.content.decode()


def test_sign_out_everywhere_when_signed_out_changes_nothing(client, user, public_client):
    tokens = sign_in(user, public_client.client_id)

    response = client.post(EVERYWHERE)

    assert response.status_code == 302
    assert live_families(user) == {family(tokens)}


# --- signing out of this browser ---


def test_a_get_of_sign_out_asks_and_signs_nobody_out(user):
    browser = signed_in(user)

    response = browser.get(SIGN_OUT)

    assert response.status_code == 200
    assert "Sign out of" in response.content.decode()
    assert browser.session["_auth_user_id"] == str(user.pk)


def test_sign_out_ends_the_session_keeps_the_apps_and_audits_it(user, public_client, caplog, audit_log):
    tokens = sign_in(user, public_client.client_id)
    browser = signed_in(user)

    response = browser.post(SIGN_OUT)

    assert response.status_code == 200
    assert "You are signed out" in response.content.decode()
    assert "_auth_user_id" not in browser.session
    assert live_families(user) == {family(tokens)}
    assert [line["event"] for line in audit_lines(caplog)][-1:] == ["signed_out"]


def test_sign_out_continues_to_a_page_of_this_site(user):
    response = signed_in(user).post(SIGN_OUT, {"next": "/oauth/authorize?client_id=x"})

    assert response.status_code == 302
    assert response["Location"] == "/oauth/authorize?client_id=x"


@pytest.mark.parametrize("elsewhere", ["https://attacker.example/", "//attacker.example/", "javascript:alert(1)"])
def test_sign_out_never_continues_to_another_site(user, elsewhere):
    response = signed_in(user).post(SIGN_OUT, {"next": elsewhere})

    assert response.status_code == 200
    assert "Location" not in response


def test_sign_out_without_its_csrf_token_is_refused_and_keeps_the_session(user):
    browser = signed_in(user, csrf_checks=True)

    response = browser.post(SIGN_OUT, **HTML)

    assert response.status_code == 403
    assert browser.session["_auth_user_id"] == str(user.pk)


def test_audit_lines_name_no_user_in_clear(user, caplog, audit_log):
    signed_in(user).post(SIGN_OUT)

    line = next(line for line in audit_lines(caplog) if line["event"] == "signed_out")
    assert line["user"] and line["user"] != str(user.pk) and user.username not in json.dumps(line)
