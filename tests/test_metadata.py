"""Discovery documents: RFC 8414 authorization server metadata and RFC 9728 protected resource metadata."""

import pytest
from django.db import OperationalError
from django_redis.exceptions import ConnectionInterrupted

from oauth_server.views import health

BASE = "http://127.0.0.1:8000"


@pytest.mark.django_db
def test_authorization_server_metadata_advertises_what_the_server_enforces(client):
    metadata = client.get("/.well-known/oauth-authorization-server").json()

    assert metadata["issuer"] == BASE
    assert metadata["authorization_endpoint"] == f"{BASE}/oauth/authorize"
    assert metadata["token_endpoint"] == f"{BASE}/oauth/token"
    assert metadata["revocation_endpoint"] == f"{BASE}/oauth/revoke"
    assert metadata["response_types_supported"] == ["code"]
    assert metadata["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["token_endpoint_auth_methods_supported"] == [
        "none",
        "client_secret_basic",
        "client_secret_post",
    ]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert set(metadata["scopes_supported"]) == {"mcp", "offline_access"}
    assert "introspection_endpoint" not in metadata


@pytest.mark.django_db
def test_openid_configuration_is_the_same_document(client):
    assert (
        client.get("/.well-known/openid-configuration").json()
        == client.get("/.well-known/oauth-authorization-server").json()
    )


@pytest.mark.django_db
def test_issuer_comes_from_the_base_url_not_the_host_header(client):
    metadata = client.get("/.well-known/oauth-authorization-server", HTTP_HOST="localhost").json()

    assert metadata["issuer"] == BASE
    assert metadata["token_endpoint"] == f"{BASE}/oauth/token"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"])
def test_protected_resource_metadata_names_the_mcp_resource(client, path):
    metadata = client.get(path).json()

    assert metadata["resource"] == f"{BASE}/mcp"
    assert metadata["authorization_servers"] == [BASE]
    assert metadata["bearer_methods_supported"] == ["header"]
    assert metadata["scopes_supported"] == ["mcp"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ],
)
def test_discovery_documents_may_be_cached_for_an_hour(client, path):
    response = client.get(path)

    assert response.status_code == 200
    assert response["Cache-Control"] == "public, max-age=3600"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/oauth-protected-resource/other",
        "/.well-known/oauth-authorization-server/x",
        "/oauth/token/",
    ],
)
def test_other_paths_are_not_found_and_never_redirected(client, path):
    assert client.get(path).status_code == 404


@pytest.mark.django_db
def test_health_answers_ok(client):
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readiness_answers_ready_when_the_database_and_cache_answer(client):
    response = client.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok", "cache": "ok"}


class Unreachable:
    """Stands for a database connection or cache whose server is down."""

    def cursor(self) -> None:
        raise OperationalError("connection refused")

    def get(self, key: str) -> None:
        raise ConnectionInterrupted(None)


@pytest.mark.django_db
@pytest.mark.parametrize("down", ["database", "cache"])
def test_readiness_answers_503_naming_what_is_down(client, monkeypatch, down):
    monkeypatch.setattr(health, "connection" if down == "database" else "cache", Unreachable())

    response = client.get("/health/ready")

    assert response.status_code == 503
    up = "cache" if down == "database" else "database"
    assert response.json() == {"status": "unavailable", down: "unavailable", up: "ok"}
    assert client.get("/health").json() == {"status": "ok"}  # liveness is not readiness
