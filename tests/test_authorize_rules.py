"""Authorization request rules: every refusal has its error code, the right channel, and changes nothing."""

import dataclasses
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from oauth2_provider.models import Grant

from tests.support.authorize import authorize_url
from tests.support.flow import consent_form
from tests.support.pkce import pkce_pair

ISSUER = "http://127.0.0.1:8000"


def redirected_error(response) -> dict[str, str]:
    """The error parameters of a redirect back to the client."""
    assert response.status_code == 302, response.content
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "http://127.0.0.1/callback"
    return {key: values[0] for key, values in parse_qs(location.query).items()}


@pytest.fixture
def challenge() -> str:
    return pkce_pair()[1]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "description"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "code_challenge is required"),
        ({"code_challenge_method": "plain"}, "code_challenge_method must be S256"),
        ({"code_challenge_method": None}, "code_challenge_method must be S256"),
        ({"code_challenge_method": "S512"}, "code_challenge_method must be S256"),
        ({"code_challenge": "too-short"}, "code_challenge must be the base64url SHA-256"),
    ],
)
def test_pkce_violations_are_refused_at_the_first_get_before_sign_in(
    client, public_client, challenge, overrides, description
):
    # given a signed-out browser, when the client sends a request without proper S256 PKCE
    response = client.get(authorize_url(public_client.client_id, challenge, state="s" * 30, **overrides))

    # then the client gets invalid_request with state and iss, and the user is never sent to sign in
    error = redirected_error(response)
    assert error["error"] == "invalid_request"
    assert description in error["error_description"]
    assert error["state"] == "s" * 30
    assert error["iss"] == ISSUER


@pytest.mark.django_db
def test_plain_pkce_is_refused_for_a_signed_in_user_too(client, user, public_client, challenge):
    client.force_login(user)

    error = redirected_error(
        client.get(authorize_url(public_client.client_id, challenge, code_challenge_method="plain"))
    )

    assert error["error"] == "invalid_request"
    assert not Grant.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("state", [None, "", "x" * 23])
def test_missing_or_short_state_is_refused_with_a_redirect(client, public_client, challenge, state):
    error = redirected_error(client.get(authorize_url(public_client.client_id, challenge, state=state)))

    assert error["error"] == "invalid_request"
    assert "state is required" in error["error_description"]
    assert error["iss"] == ISSUER


@pytest.mark.django_db
def test_state_of_24_and_512_characters_is_accepted(client, user, public_client, challenge):
    client.force_login(user)

    for state in ("a" * 24, "b" * 512):
        assert client.get(authorize_url(public_client.client_id, challenge, state=state)).status_code == 200


@pytest.mark.django_db
def test_too_long_state_gets_a_400_and_is_never_echoed(client, public_client, challenge):
    state = "L" * 513

    response = client.get(authorize_url(public_client.client_id, challenge, state=state))

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert state not in response.content.decode()
    assert "Location" not in response


@pytest.mark.django_db
def test_unknown_client_gets_a_400_and_no_redirect(client, challenge):
    response = client.get(authorize_url("no-such-client", challenge))

    assert response.status_code == 400
    assert "Location" not in response
    assert response.json()["error"] == "invalid_request"


@pytest.mark.django_db
def test_unknown_client_in_a_browser_gets_an_html_error_page(client, challenge):
    response = client.get(authorize_url("no-such-client", challenge), HTTP_ACCEPT="text/html")

    assert response.status_code == 400
    assert b"cannot continue" in response.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/callback",
        "http://127.0.0.1/other",
        "http://127.0.0.1/callback?extra=1",
        "http://localhost.evil.example/callback",
        "http://127.0.0.1/callback#fragment",
    ],
)
def test_unregistered_redirect_uri_gets_a_400_and_no_redirect(client, public_client, challenge, redirect_uri):
    response = client.get(authorize_url(public_client.client_id, challenge, redirect_uri=redirect_uri))

    assert response.status_code == 400
    assert "Location" not in response


@pytest.mark.django_db
def test_loopback_redirect_uri_matches_on_any_port(client, user, public_client, challenge):
    client.force_login(user)

    response = client.get(
        authorize_url(public_client.client_id, challenge, redirect_uri="http://127.0.0.1:49152/callback")
    )

    assert response.status_code == 200


@pytest.mark.django_db
def test_localhost_matches_any_port_only_when_allowed(client, user, public_client, challenge, settings):
    public_client.redirect_uris = "http://localhost/callback"
    public_client.save()
    client.force_login(user)
    url = authorize_url(public_client.client_id, challenge, redirect_uri="http://localhost:33418/callback")
    assert client.get(url).status_code == 200

    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, allow_localhost_redirect_uris=False)

    assert client.get(url).status_code == 400


@pytest.mark.django_db
@pytest.mark.parametrize(
    "resource",
    [
        "https://other.example/mcp",
        "http://127.0.0.1:8000/other",
        "http://127.0.0.1:9999/mcp",
        "not a uri",
        "",
    ],
)
def test_foreign_resource_is_refused_with_invalid_target(client, user, public_client, challenge, resource):
    client.force_login(user)

    error = redirected_error(client.get(authorize_url(public_client.client_id, challenge, resource=resource)))

    assert error["error"] == "invalid_target"
    assert error["iss"] == ISSUER
    assert not Grant.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "resource", ["http://127.0.0.1:8000/mcp", "http://127.0.0.1:8000/mcp/", "HTTP://127.0.0.1:8000/mcp", None]
)
def test_the_mcp_resource_in_any_spelling_binds_the_grant_to_the_canonical_resource(
    client, user, public_client, challenge, resource
):
    client.force_login(user)
    page = client.get(authorize_url(public_client.client_id, challenge, resource=resource))

    client.post("/oauth/authorize", {**consent_form(page), "allow": "Authorize"})

    assert Grant.objects.get().resource == ["http://127.0.0.1:8000/mcp"]


@pytest.mark.django_db
def test_every_resource_of_the_request_must_be_the_mcp_resource(client, user, public_client, challenge):
    client.force_login(user)
    url = authorize_url(public_client.client_id, challenge, resource="http://127.0.0.1:8000/mcp")

    error = redirected_error(client.get(url + "&resource=" + quote("https://other.example/mcp", safe="")))

    assert error["error"] == "invalid_target"
    assert not Grant.objects.exists()


@pytest.mark.django_db
def test_every_code_is_stored_with_an_s256_challenge(client, user, public_client, challenge):
    """oauthlib would also verify `plain`; no code ever carries it, so its verifier table needs no narrowing."""
    client.force_login(user)
    page = client.get(authorize_url(public_client.client_id, challenge))

    client.post("/oauth/authorize", {**consent_form(page), "allow": "Authorize"})

    assert Grant.objects.get().code_challenge_method == "S256"


@pytest.mark.django_db
def test_unknown_scopes_are_dropped_and_the_default_scope_granted(client, user, public_client, challenge):
    client.force_login(user)
    page = client.get(authorize_url(public_client.client_id, challenge, scope="claudeai"))

    client.post("/oauth/authorize", {**consent_form(page), "allow": "Authorize"})

    assert Grant.objects.get().scope == "mcp"


@pytest.mark.django_db
def test_signed_out_user_with_a_valid_request_is_sent_to_sign_in(client, public_client, challenge):
    url = authorize_url(public_client.client_id, challenge)

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/oauth/login?next=")


@pytest.mark.django_db
def test_consent_page_shows_who_asks_and_where_the_user_goes_back(client, user, public_client, challenge):
    client.force_login(user)

    page = client.get(authorize_url(public_client.client_id, challenge)).content.decode()

    assert "Test client" in page
    assert "127.0.0.1" in page
    assert "Use the MCP server (mcp)" in page
    assert "only returns to programs on this computer" in page


@pytest.mark.django_db
def test_consent_page_has_no_localhost_warning_for_https_clients(client, user, public_client, challenge):
    public_client.redirect_uris = "https://app.example.com/cb"
    public_client.save()
    client.force_login(user)

    page = client.get(authorize_url(public_client.client_id, challenge, redirect_uri="https://app.example.com/cb"))

    assert "app.example.com" in page.content.decode()
    assert "only returns to programs on this computer" not in page.content.decode()


@pytest.mark.django_db
def test_deny_sends_access_denied_with_state_and_iss(client, user, public_client, challenge):
    client.force_login(user)
    page = client.get(authorize_url(public_client.client_id, challenge, state="d" * 32))

    error = redirected_error(client.post("/oauth/authorize", consent_form(page)))

    assert error == {
        "error": "access_denied",
        "state": "d" * 32,
        "iss": ISSUER,
        **{k: v for k, v in error.items() if k == "error_description"},
    }
    assert not Grant.objects.exists()


@pytest.mark.django_db
def test_allow_sends_code_state_and_iss(client, user, public_client, challenge):
    client.force_login(user)
    page = client.get(authorize_url(public_client.client_id, challenge, state="a" * 32))

    answer = redirected_error(client.post("/oauth/authorize", {**consent_form(page), "allow": "Authorize"}))

    assert set(answer) == {"code", "state", "iss"}
    assert answer["state"] == "a" * 32
    assert answer["iss"] == ISSUER


@pytest.mark.django_db
@pytest.mark.parametrize(
    "tampering",
    [
        {"code_challenge_method": "plain"},
        {"code_challenge": ""},
        {"resource": "https://other.example/mcp"},
        {"state": "short"},
        {"redirect_uri": "https://evil.example/cb"},
        {"client_id": ""},
    ],
)
def test_a_tampered_consent_form_is_refused_and_issues_no_code(client, user, public_client, challenge, tampering):
    client.force_login(user)
    page = client.get(authorize_url(public_client.client_id, challenge))

    response = client.post("/oauth/authorize", {**consent_form(page), **tampering, "allow": "Authorize"})

    assert "code=" not in response.get("Location", "")
    assert response.status_code in (302, 400)
    assert not Grant.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_authorize_accepts_only_get_and_post(client, public_client, method):
    assert getattr(client, method)("/oauth/authorize").status_code == 405
