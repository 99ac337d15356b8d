"""Headers on every answer, framing and CSRF protection, the 413 for oversized bodies, and no redirects."""

import dataclasses

import pytest
from django.test import Client
from oauth2_provider.models import AccessToken, Grant, RefreshToken

from tests.support.authorize import authorize_url
from tests.support.flow import consent_form
from tests.support.pkce import pkce_pair
from tests.support.users import PASSWORD

COMMON = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer makes Chromium send `Origin: null`, which fails CSRF
    "X-Frame-Options": "DENY",
}
DISCOVERY = [
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-protected-resource/mcp",
]
SLASHED = ["/oauth/token/", "/health/", "/oauth/authorize/", "/oauth/login/", "/oauth/revoke/"]


def assert_hardened(response, cache_control: str | None = None) -> None:
    """The common headers; Cache-Control is `cache_control` exactly, else must forbid storing."""
    for name, value in COMMON.items():
        assert response.get(name) == value, f"{name}: {response.get(name)!r}"
    if cache_control is None:
        directives = {d.strip() for d in response.get("Cache-Control", "").split(",")}
        assert "no-store" in directives, response.get("Cache-Control")
        assert "public" not in directives
    else:
        assert response.get("Cache-Control") == cache_control
    assert "frame-ancestors 'none'" in response.get("Content-Security-Policy", "")


def logged_in(client: Client, user) -> Client:
    client.force_login(user)
    return client


@pytest.fixture
def https_base_url(settings):
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, base_url="https://mcp.example.com")


# --- headers on every answer ---


@pytest.mark.django_db
def test_a_json_error_from_the_token_endpoint_carries_the_security_headers(client):
    response = client.post("/oauth/token", {"grant_type": "authorization_code", "code": "nope"})

    assert response.status_code in (400, 401)
    assert response["Content-Type"] == "application/json"
    assert_hardened(response)
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_the_login_page_carries_the_security_headers(client):
    response = client.get("/oauth/login")

    assert response.status_code == 200
    assert_hardened(response)
    assert "default-src 'none'" in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_the_health_answer_carries_the_security_headers(client):
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert_hardened(response)
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_a_not_found_answer_carries_the_security_headers(client):
    response = client.get("/no/such/page")

    assert response.status_code == 404
    assert_hardened(response)


@pytest.mark.django_db
def test_the_admin_login_page_cannot_be_framed_or_cached(client):
    response = client.get("/admin/login/")

    assert response.status_code == 200
    assert_hardened(response)


@pytest.mark.django_db
@pytest.mark.parametrize("path", DISCOVERY)
def test_discovery_documents_are_cacheable_for_an_hour_but_otherwise_hardened(client, path):
    response = client.get(path)

    assert response.status_code == 200, response.content
    assert_hardened(response, cache_control="public, max-age=3600")


# --- HSTS follows the base URL ---


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/health", "/oauth/login", DISCOVERY[0]])
def test_no_hsts_on_the_default_http_loopback_base_url(client, path):
    response = client.get(path)

    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/health", "/oauth/login", DISCOVERY[0]])
def test_hsts_on_an_https_base_url(client, https_base_url, path):
    response = client.get(path)

    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


@pytest.mark.django_db
def test_hsts_on_an_https_base_url_also_covers_error_answers(client, https_base_url):
    response = client.post("/oauth/token", {"grant_type": "refresh_token", "refresh_token": "nope"})

    assert response.status_code in (400, 401)
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


# --- the consent page cannot be framed ---


@pytest.mark.django_db
def test_the_consent_page_cannot_be_framed(client, user, public_client):
    _, challenge = pkce_pair()

    response = logged_in(client, user).get(authorize_url(public_client.client_id, challenge))

    assert response.status_code == 200
    assert response.context["form"] is not None
    assert_hardened(response)
    assert response["Content-Security-Policy"].count("frame-ancestors") == 1


# --- CSRF ---


@pytest.mark.django_db
def test_the_login_form_without_a_csrf_token_is_refused_and_signs_nobody_in(user):
    browser = Client(enforce_csrf_checks=True)
    browser.get("/oauth/login")

    response = browser.post("/oauth/login", {"username": "alice", "password": PASSWORD})

    assert response.status_code == 403
    assert "_auth_user_id" not in browser.session


@pytest.mark.django_db
def test_the_login_form_with_its_csrf_token_signs_in(user):
    browser = Client(enforce_csrf_checks=True)
    page = browser.get("/oauth/login")
    token = page.context["csrf_token"]

    response = browser.post(
        "/oauth/login", {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": str(token)}
    )

    assert response.status_code == 302
    assert browser.session["_auth_user_id"] == str(user.pk)


@pytest.mark.django_db
def test_the_consent_form_without_a_csrf_token_is_refused_and_issues_no_code(user, public_client):
    browser = logged_in(Client(enforce_csrf_checks=True), user)
    _, challenge = pkce_pair()
    page = browser.get(authorize_url(public_client.client_id, challenge))
    assert page.status_code == 200
    fields = {k: v for k, v in consent_form(page).items() if k != "csrfmiddlewaretoken"}

    response = browser.post("/oauth/authorize", {**fields, "allow": "Authorize"})

    assert response.status_code == 403
    assert "Location" not in response
    assert not Grant.objects.exists()


@pytest.mark.django_db
def test_the_consent_form_with_its_csrf_token_issues_a_code(user, public_client):
    browser = logged_in(Client(enforce_csrf_checks=True), user)
    _, challenge = pkce_pair()
    page = browser.get(authorize_url(public_client.client_id, challenge))
    token = str(page.context["csrf_token"])

    response = browser.post(
        "/oauth/authorize", {**consent_form(page), "allow": "Authorize", "csrfmiddlewaretoken": token}
    )

    assert response.status_code == 302
    assert "code=" in response["Location"]
    assert Grant.objects.count() == 1


# --- oversized bodies ---


@pytest.mark.django_db
def test_a_form_body_over_one_mib_gets_413_invalid_request_not_400_or_500(client, settings):
    body = {"grant_type": "authorization_code", "code": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}

    response = client.post("/oauth/token", body)

    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "invalid_request"
    assert "error_description" in response.json()
    assert_hardened(response)
    assert response["Cache-Control"] == "no-store"
    assert not AccessToken.objects.exists() and not RefreshToken.objects.exists()


@pytest.mark.django_db
def test_a_body_just_under_the_limit_is_read_normally(client, settings):
    body = {"grant_type": "authorization_code", "code": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE - 100)}

    response = client.post("/oauth/token", body)

    assert response.status_code in (400, 401)
    assert "too large" not in response.json()["error_description"]


# --- paths never redirect ---


@pytest.mark.django_db
@pytest.mark.parametrize("path", SLASHED)
def test_a_trailing_slash_is_not_found_rather_than_redirected(client, path):
    response = client.get(path)

    assert response.status_code == 404
    assert "Location" not in response


@pytest.mark.django_db
def test_a_trailing_slash_on_a_token_post_is_not_found_rather_than_redirected(client):
    response = client.post("/oauth/token/", {"grant_type": "refresh_token", "refresh_token": "x"})

    assert response.status_code == 404
    assert "Location" not in response


@pytest.mark.django_db
def test_get_on_the_token_endpoint_is_method_not_allowed(client):
    response = client.get("/oauth/token")

    assert response.status_code == 405
    assert "POST" in response["Allow"]
    assert "Location" not in response
