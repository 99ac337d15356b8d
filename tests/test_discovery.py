"""Provider discovery: what a usable discovery document is, SSRF refusal, and degraded answers until it works."""

import dataclasses
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import Client

from infra.config import OidcConfig
from muster_project.discovery_gate import DiscoveryGate
from oauth_server.startup import log_effective_settings
from oauth_server.upstream import discovery, outbound
from oauth_server.upstream.provider import configured


@pytest.fixture
def served() -> Iterator[dict[str, Any]]:
    """A local server answering every GET with the JSON document the test puts in the yielded dict."""
    document: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    document["issuer"] = f"http://127.0.0.1:{server.server_port}"
    yield document
    server.shutdown()
    server.server_close()


def valid_document(issuer: str) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/auth",
        "token_endpoint": issuer + "/token",
        "jwks_uri": issuer + "/keys",
        "id_token_signing_alg_values_supported": ["RS256"],
    }


def point_at(settings: Any, issuer: str, allow_private: bool = True) -> None:
    oidc = OidcConfig(issuer_url=issuer, client_id="c", client_secret="s", allow_private_ip_oidc=allow_private)
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, provider="oidc", oidc=oidc)
    discovery.forget()


def test_a_valid_document_gives_the_endpoints_and_asymmetric_algorithms(settings, served):
    served.update(valid_document(served["issuer"]), id_token_signing_alg_values_supported=["HS256", "RS256", "none"])
    point_at(settings, served["issuer"])

    found = discovery.discover(configured())

    assert found.token_endpoint == served["issuer"] + "/token"
    assert found.signing_algorithms == ("RS256",)
    assert found.userinfo_endpoint == "" and found.revocation_endpoint == ""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"issuer": "https://someone-else.example"}, "names another issuer"),
        ({"token_endpoint": None}, "no token_endpoint"),
        ({"jwks_uri": "http://203.0.113.5/keys"}, "jwks_uri must be an https URL"),
        ({"id_token_signing_alg_values_supported": ["HS256"]}, "no asymmetric id_token signing algorithm"),
    ],
)
def test_an_unusable_document_is_refused(settings, served, change, message):
    issuer = served["issuer"]
    served.update(valid_document(issuer))
    served.update({key: value for key, value in change.items() if value is not None})
    for key in [key for key, value in change.items() if value is None]:
        del served[key]
    point_at(settings, issuer)

    with pytest.raises(discovery.DiscoveryError, match=message):
        discovery.discover(configured())


def test_a_private_issuer_needs_allow_private_ip_oidc(settings, served):
    served.update(valid_document(served["issuer"]))
    point_at(settings, served["issuer"], allow_private=False)

    with pytest.raises(discovery.DiscoveryError, match="non-public address"):
        discovery.discover(configured())


def test_outbound_calls_refuse_internal_addresses():
    # IPv4 hidden in IPv6 forms (mapped, NAT64) is judged as the IPv4 it carries.
    for host in ("127.0.0.1", "10.0.0.8", "169.254.169.254", "::1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe"):
        with pytest.raises(outbound.OutboundBlocked):
            outbound.resolve(host, 443, allow_private=False)


def test_health_says_degraded_while_discovery_is_pending(settings, db):
    point_at(settings, "https://idp.example")

    assert Client().get("/health").json() == {"status": "degraded", "reason": "oidc-discovery-pending"}


def call(app: Any, path: str) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        await app({"type": "http", "path": path, "method": "GET", "headers": []}, receive, send)

    async_to_sync(run)()
    return sent


def test_the_gate_answers_503_until_discovery_succeeds_then_lets_everything_through(settings, served):
    async def site(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"site"})

    gate = DiscoveryGate(site)
    point_at(settings, served["issuer"])

    refused = call(gate, "/mcp")
    assert refused[0]["status"] == 503 and (b"retry-after", b"30") in refused[0]["headers"]
    assert json.loads(refused[1]["body"])["error"] == "service_unavailable"
    assert call(gate, "/health")[0]["status"] == 200
    assert call(gate, "/health/ready")[0]["status"] == 503  # not ready: every other path is refused
    served.update(valid_document(served["issuer"]))
    discovery.ensure()
    assert call(gate, "/mcp")[0]["status"] == 200
    discovery.forget()


def test_local_accounts_never_wait_for_discovery(settings):
    assert discovery.ready()
    with pytest.raises(discovery.DiscoveryError):
        discovery.ensure()


def test_the_start_warns_when_upstream_tokens_are_encrypted_with_a_derived_key(settings, caplog):
    point_at(settings, "https://idp.example")

    log_effective_settings()

    assert "users sign in at https://idp.example (oidc)" in caplog.text
    assert "encryptionKey is not set" in caplog.text
    assert "allowPrivateIPOIDC is on" in caplog.text
