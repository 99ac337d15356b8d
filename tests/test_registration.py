"""Dynamic Client Registration (RFC 7591) at /oauth/register: muster's gates, validation, limits, real clients."""

import dataclasses
import json

import pytest
from django.test import Client
from django.urls import NoReverseMatch, reverse
from oauth2_provider.models import AccessToken, Application

from infra import audit
from infra.client_ip import bucket_key
from infra.outages import RETRY_AFTER_SECONDS
from oauth_server.models import ClientRegistration
from tests.fixtures.clients import (
    CLAUDE_AI_DCR,
    CLAUDE_AI_REDIRECT_URI,
    CURSOR_DCR,
    CURSOR_REDIRECT_URI,
    VSCODE_DCR,
)
from tests.support.cache import use_redis
from tests.support.flow import basic, exchange, issue_code

BASE = "http://127.0.0.1:8000"
REGISTER = "/oauth/register"
TOKEN = "registration-token-that-is-long-enough"
LOOPBACK = "http://127.0.0.1/callback"
CLAUDE = "https://claude.ai/api/mcp/auth_callback"

pytestmark = pytest.mark.django_db


def configure(settings, **changes) -> None:
    """Change the configuration (DOT's settings derived from it follow)."""
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, **changes)


def closed(settings, **changes) -> None:
    """Open registration off; only the token and the trusted allowlists let clients in."""
    configure(settings, allow_public_client_registration=False, registration_token=TOKEN, **changes)


def register(client: Client, body: object, token: str | None = None, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token is not None else {}
    return client.post(REGISTER, json.dumps(body), content_type="application/json", **headers, **extra)


def confidential(*uris: str) -> dict:
    return {
        "client_name": "Test",
        "redirect_uris": list(uris or [LOOPBACK]),
        "token_endpoint_auth_method": "client_secret_post",
    }


def public(*uris: str) -> dict:
    return {"client_name": "Test", "redirect_uris": list(uris or [LOOPBACK]), "token_endpoint_auth_method": "none"}


def gate_of(response) -> str:
    assert response.status_code == 201, response.content
    return ClientRegistration.objects.get(application__client_id=response.json()["client_id"]).gate


def assert_refused(response, status: int, error: str) -> None:
    assert response.status_code == status, response.content
    assert response.json()["error"] == error
    assert response.json()["error_description"]
    assert not Application.objects.exists()
    assert not ClientRegistration.objects.exists()


# --- who may register ---


def test_registration_is_open_when_the_base_url_is_loopback(client):
    assert gate_of(register(client, public())) == ClientRegistration.Gate.PUBLIC


def test_registration_is_closed_by_default_on_an_https_base_url(settings, client):
    configure(settings, base_url="https://auth.example.com", allow_public_client_registration=None)

    response = register(client, confidential())

    assert_refused(response, 401, "invalid_token")
    assert response["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert "registration token" in response.json()["error_description"]


def test_an_explicit_allow_public_client_registration_wins_over_the_base_url(settings, client):
    configure(settings, base_url="https://auth.example.com", allow_public_client_registration=True)
    assert gate_of(register(client, public())) == ClientRegistration.Gate.PUBLIC


def test_an_explicit_refusal_of_public_registration_wins_on_loopback(settings, client):
    configure(settings, allow_public_client_registration=False)
    assert_refused(register(client, public()), 401, "invalid_token")


def test_the_registration_token_lets_a_confidential_client_in(settings, client):
    closed(settings)
    assert gate_of(register(client, confidential(), token=TOKEN)) == ClientRegistration.Gate.TOKEN


@pytest.mark.parametrize("token", [None, "wrong-token", "", TOKEN + "x", "ünïcode"])
def test_a_missing_or_wrong_registration_token_is_refused(settings, client, token):
    closed(settings)
    assert_refused(register(client, confidential(), token=token), 401, "invalid_token")


def test_no_token_is_accepted_when_none_is_configured(settings, client):
    configure(settings, allow_public_client_registration=False, registration_token="")
    assert_refused(register(client, confidential(), token=""), 401, "invalid_token")


def test_a_public_client_is_not_let_in_by_the_registration_token_alone(settings, client):
    closed(settings)

    response = register(client, public(), token=TOKEN)

    assert_refused(response, 400, "invalid_client_metadata")
    assert "Public client registration is not enabled" in response.json()["error_description"]


def test_a_public_client_with_the_token_still_gets_in_through_a_trusted_scheme(settings, client):
    closed(settings, trusted_public_registration_schemes=("cursor",))
    response = register(client, public(CURSOR_REDIRECT_URI), token=TOKEN)
    assert gate_of(response) == ClientRegistration.Gate.TRUSTED_SCHEME


def test_a_wrong_token_falls_through_to_the_trusted_schemes(settings, client):
    closed(settings, trusted_public_registration_schemes=("cursor",))
    response = register(client, public(CURSOR_REDIRECT_URI), token="wrong-token")
    assert gate_of(response) == ClientRegistration.Gate.TRUSTED_SCHEME


def test_trusted_schemes_admit_a_client_only_when_every_redirect_uri_uses_one(settings, client):
    closed(settings, trusted_public_registration_schemes=("cursor",))

    assert_refused(register(client, public(CURSOR_REDIRECT_URI, LOOPBACK)), 401, "invalid_token")
    assert gate_of(register(client, public(CURSOR_REDIRECT_URI, "CURSOR://other/cb"))) == "trusted-scheme"


@pytest.mark.parametrize(
    "requested",
    [
        CLAUDE,
        "https://claude.ai:443/api/mcp/auth_callback",
        "https://claude.ai/api/mcp/auth_callback/",
        "https://CLAUDE.AI/api/mcp/auth_callback",
        "HTTPS://Claude.ai:443/api/mcp/auth_callback/",
    ],
)
def test_trusted_redirect_uris_match_after_normalisation(settings, client, requested):
    closed(settings, trusted_public_registration_redirect_uris=(CLAUDE,))
    assert gate_of(register(client, public(requested))) == ClientRegistration.Gate.TRUSTED_REDIRECT


@pytest.mark.parametrize(
    "requested",
    [
        "https://claude.ai/api/MCP/auth_callback",  # the path keeps its case
        "https://claude.ai:8443/api/mcp/auth_callback",
        "https://claude.ai/api/mcp/auth_callback?x=1",
        "https://evil.claude.ai/api/mcp/auth_callback",
    ],
)
def test_a_redirect_uri_that_differs_from_the_trusted_one_is_not_trusted(settings, client, requested):
    closed(settings, trusted_public_registration_redirect_uris=(CLAUDE,))
    assert_refused(register(client, public(requested)), 401, "invalid_token")


def test_trusted_redirect_uris_admit_a_client_only_when_every_redirect_uri_is_listed(settings, client):
    closed(settings, trusted_public_registration_redirect_uris=(CLAUDE,))
    assert_refused(register(client, public(CLAUDE, "https://evil.example/cb")), 401, "invalid_token")


# --- validation: 400 with the RFC 7591 code, never a row ---


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"client_name": "No URIs"}, "invalid_redirect_uri"),
        ({"redirect_uris": []}, "invalid_redirect_uri"),
        ({"redirect_uris": None}, "invalid_redirect_uri"),
        ({"redirect_uris": LOOPBACK}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK, 7]}, "invalid_client_metadata"),
        ({"redirect_uris": ["http://example.com/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://example.com/cb#frag"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://user:pw@example.com/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://10.0.0.1/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["myapp://callback"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["/relative/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://127.0.0.1:99999/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": [LOOPBACK], "client_name": "x" * 256}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "client_name": "<script>"}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "client_name": 'say "hi"'}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "client_name": "it's"}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "client_name": "back`tick"}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "client_name": "two\nlines"}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "client_name": "bell\x07"}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "client_name": 42}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": 1}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "grant_types": ["client_credentials"]}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "grant_types": ["authorization_code", "implicit"]}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "grant_types": "authorization_code"}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "response_types": ["token"]}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "response_types": ["code", "id_token"]}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "scope": ["mcp"]}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "scopes": "mcp"}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "scopes": ["mcp", 1]}, "invalid_client_metadata"),
    ],
)
def test_invalid_metadata_is_refused_with_its_rfc_7591_code_and_nothing_is_stored(client, body, error):
    assert_refused(register(client, body), 400, error)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        ("{not json", "application/json"),
        ('["a", "list"]', "application/json"),
        ('"a string"', "application/json"),
        ("null", "application/json"),
        ("", "application/json"),
        (b"\xff\xfe{}", "application/json"),
        ("[" * 100_000 + "]" * 100_000, "application/json"),
        ('{"redirect_uris": ["http://127.0.0.1/callback"]}', "text/plain"),
        ("redirect_uris=http://127.0.0.1/callback", "application/x-www-form-urlencoded"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused_cleanly(client, content, content_type):
    response = client.post(REGISTER, content, content_type=content_type)
    assert_refused(response, 400, "invalid_client_metadata")


def test_a_body_over_one_mebibyte_is_refused_without_an_error(client):
    body = json.dumps({"redirect_uris": [LOOPBACK], "padding": "x" * (1 << 20)})
    response = client.post(REGISTER, body, content_type="application/json")
    assert_refused(response, 413, "invalid_request")


def test_a_json_content_type_with_a_charset_is_accepted(client):
    body = json.dumps(public())
    response = client.post(REGISTER, body, content_type="application/json; charset=utf-8")
    assert response.status_code == 201, response.content


def test_unknown_fields_and_standard_scope_and_muster_scopes_are_accepted_and_not_stored(client):
    body = {**public(), "scope": "mcp offline_access", "scopes": ["mcp"], "logo_uri": "https://x/logo.png", "x": {}}
    response = register(client, body)

    assert response.status_code == 201, response.content
    assert "scope" not in response.json()


def test_a_client_name_of_255_printable_characters_is_accepted(client):
    name = "Ünïcode client — " + "n" * 238  # DOT's Application.name holds 255 (muster: 256)
    response = register(client, {**public(), "client_name": name})
    assert response.status_code == 201, response.content
    assert response.json()["client_name"] == name


# --- the answer ---


def test_a_public_client_gets_the_rfc_7591_answer_without_a_secret(client):
    response = register(client, public("http://127.0.0.1/callback", "http://127.0.0.1:33418/"))

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "client_id",
        "client_id_issued_at",
        "client_name",
        "redirect_uris",
        "grant_types",
        "response_types",
        "token_endpoint_auth_method",
    }
    assert body["redirect_uris"] == ["http://127.0.0.1/callback", "http://127.0.0.1:33418/"]
    assert body["grant_types"] == ["authorization_code", "refresh_token"]
    assert body["response_types"] == ["code"]
    assert body["token_endpoint_auth_method"] == "none"
    assert isinstance(body["client_id_issued_at"], int)
    application = Application.objects.get(client_id=body["client_id"])
    assert application.client_type == Application.CLIENT_PUBLIC
    assert application.authorization_grant_type == Application.GRANT_AUTHORIZATION_CODE
    assert application.registration_source == "dcr"
    assert application.user is None
    registration = application.muster_registration
    assert registration.gate == ClientRegistration.Gate.PUBLIC
    assert registration.registered_from == audit.hashed(bucket_key("127.0.0.1"))


def test_no_registration_access_token_is_issued_or_stored(client):
    body = register(client, confidential()).json()

    assert "registration_access_token" not in body
    assert "registration_client_uri" not in body
    assert not AccessToken.objects.exists()
    with pytest.raises(NoReverseMatch):
        reverse("oauth2_provider:dcr-register-management", kwargs={"client_id": body["client_id"]})


def test_a_confidential_client_gets_a_secret_that_works_at_the_token_endpoint(client, user):
    body = register(client, confidential()).json()

    assert body["token_endpoint_auth_method"] == "client_secret_post"
    assert body["client_secret_expires_at"] == 0
    secret = body["client_secret"]
    stored = Application.objects.get(client_id=body["client_id"])
    assert stored.client_type == Application.CLIENT_CONFIDENTIAL
    assert stored.client_secret.startswith("muster_client_secret_sha256$")
    assert secret not in stored.client_secret

    client.force_login(user)
    code, verifier, _ = issue_code(client, body["client_id"], redirect_uri=LOOPBACK)
    assert exchange(client, body["client_id"], code, verifier, client_secret="wrong").status_code == 401
    answer = exchange(client, body["client_id"], code, verifier, client_secret=secret)
    assert answer.status_code == 200, answer.content
    assert answer.json()["access_token"]


def test_a_client_that_names_no_auth_method_is_confidential_with_client_secret_basic(client, user):
    body = register(client, {"redirect_uris": [LOOPBACK]}).json()

    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["client_secret"]
    assert body["client_name"] == ""
    client.force_login(user)
    code, verifier, _ = issue_code(client, body["client_id"], redirect_uri=LOOPBACK)
    answer = exchange(
        client,
        body["client_id"],
        code,
        verifier,
        headers={"Authorization": basic(body["client_id"], body["client_secret"])},
    )
    assert answer.status_code == 200, answer.content


def test_get_on_the_registration_endpoint_is_not_allowed(client):
    assert client.get(REGISTER).status_code == 405


def test_server_metadata_advertises_the_registration_endpoint(client):
    metadata = client.get("/.well-known/oauth-authorization-server").json()
    assert metadata["registration_endpoint"] == f"{BASE}/oauth/register"


def test_registration_is_csrf_exempt_for_cookie_less_api_clients():
    response = register(Client(enforce_csrf_checks=True), public())
    assert response.status_code == 201, response.content


# --- limits ---


def test_the_eleventh_registration_from_one_ip_in_an_hour_is_refused(settings, client):
    configure(settings, rate_limit=dataclasses.replace(settings.MUSTER_CONFIG.rate_limit, clients_per_ip=100))
    for _ in range(10):
        assert register(client, public()).status_code == 201

    response = register(client, public())

    assert response.status_code == 429
    assert 3500 < int(response["Retry-After"]) <= 3600
    assert register(client, public(), REMOTE_ADDR="192.0.2.7").status_code == 201


def test_refused_attempts_count_towards_the_hourly_registration_limit(settings, client):
    configure(settings, rate_limit=dataclasses.replace(settings.MUSTER_CONFIG.rate_limit, registrations_per_hour=2))
    assert register(client, {}).status_code == 400
    assert register(client, {}).status_code == 400
    assert register(client, public()).status_code == 429


def test_an_ip_may_keep_only_so_many_registered_clients(settings, client):
    configure(settings, rate_limit=dataclasses.replace(settings.MUSTER_CONFIG.rate_limit, clients_per_ip=2))
    assert register(client, public()).status_code == 201
    assert register(client, public()).status_code == 201

    response = register(client, public())

    assert response.status_code == 429
    assert response["Retry-After"] == "3600"
    assert ClientRegistration.objects.count() == 2
    assert register(client, public(), REMOTE_ADDR="192.0.2.7").status_code == 201


# --- audit ---


def test_registrations_and_refusals_are_audited_without_the_registration_token(settings, client, caplog, audit_log):
    closed(settings)
    client_id = register(client, confidential(), token=TOKEN).json()["client_id"]
    register(client, confidential(), token="wrong-token")
    register(client, public(), token=TOKEN)

    lines = [json.loads(record.getMessage()) for record in caplog.records if record.name == "muster.audit"]
    registered = [line for line in lines if line["event"] == "client_registered"]
    refused = [line for line in lines if line["event"] == "registration_refused"]
    assert [(line["gate"], line["client"]) for line in registered] == [("token", audit.hashed(client_id))]
    assert [line["reason"] for line in refused] == ["unauthenticated", "public_client_not_allowed"]
    assert TOKEN not in caplog.text
    assert "wrong-token" not in caplog.text


# --- CORS ---


def test_a_listed_browser_origin_gets_a_preflight_answer_and_may_read_the_result(settings, client):
    configure(settings, allowed_origins=("https://inspector.example",))

    preflight = client.options(
        REGISTER, HTTP_ORIGIN="https://inspector.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert preflight.status_code == 204
    assert preflight["Access-Control-Allow-Origin"] == "https://inspector.example"
    assert "POST" in preflight["Access-Control-Allow-Methods"]
    assert "Content-Type" in preflight["Access-Control-Allow-Headers"]

    response = register(client, public(), HTTP_ORIGIN="https://inspector.example")
    assert response.status_code == 201
    assert response["Access-Control-Allow-Origin"] == "https://inspector.example"


def test_an_unlisted_origin_gets_no_cors_headers(settings, client):
    configure(settings, allowed_origins=("https://inspector.example",))

    preflight = client.options(REGISTER, HTTP_ORIGIN="https://evil.example")
    response = register(client, public(), HTTP_ORIGIN="https://evil.example")

    assert "Access-Control-Allow-Origin" not in preflight
    assert "Access-Control-Allow-Methods" not in preflight
    assert "Access-Control-Allow-Origin" not in response


# --- published client shapes: register, then sign in ---


def test_vscode_registers_with_its_published_redirect_uris_and_signs_in_on_any_loopback_port(client, user):
    body = register(client, VSCODE_DCR).json()

    assert body["redirect_uris"] == VSCODE_DCR["redirect_uris"]
    assert body["token_endpoint_auth_method"] == "none"
    client.force_login(user)
    redirect_uri = "http://127.0.0.1:51234/"  # 33418 was busy: VS Code picks another port
    code, verifier, _ = issue_code(client, body["client_id"], redirect_uri=redirect_uri)
    answer = exchange(client, body["client_id"], code, verifier, redirect_uri=redirect_uri)
    assert answer.status_code == 200, answer.content


def test_cursor_registers_through_its_trusted_scheme_and_signs_in(settings, client, user):
    closed(settings, trusted_public_registration_schemes=("cursor",))
    response = register(client, CURSOR_DCR)

    assert gate_of(response) == ClientRegistration.Gate.TRUSTED_SCHEME
    client_id = response.json()["client_id"]
    client.force_login(user)
    code, verifier, query = issue_code(client, client_id, redirect_uri=CURSOR_REDIRECT_URI)
    assert query["iss"] == [BASE]
    answer = exchange(client, client_id, code, verifier, redirect_uri=CURSOR_REDIRECT_URI)
    assert answer.status_code == 200, answer.content


def test_claude_ai_registers_through_its_trusted_redirect_uri_and_signs_in(settings, client, user):
    closed(settings, trusted_public_registration_redirect_uris=(CLAUDE_AI_REDIRECT_URI,))
    response = register(client, CLAUDE_AI_DCR)

    assert gate_of(response) == ClientRegistration.Gate.TRUSTED_REDIRECT
    body = response.json()
    assert body["client_name"] == "claudeai"
    client.force_login(user)
    code, verifier, _ = issue_code(client, body["client_id"], redirect_uri=CLAUDE_AI_REDIRECT_URI, scope="claudeai")
    answer = exchange(
        client,
        body["client_id"],
        code,
        verifier,
        redirect_uri=CLAUDE_AI_REDIRECT_URI,
        client_secret=body["client_secret"],
    )
    assert answer.status_code == 200, answer.content
    assert answer.json()["scope"] == "mcp"  # the unknown "claudeai" scope was dropped for the default


def test_a_registration_whose_lock_store_is_down_gets_the_outage_503_and_stores_nothing(client, settings, own_redis):
    url, process = own_redis
    use_redis(settings, url, "registration-faults:")
    process.kill()
    process.wait(timeout=10)

    response = register(client, public())

    assert_refused(response, 503, "temporarily_unavailable")
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
