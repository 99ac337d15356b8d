"""Client ID Metadata Documents fetched over real HTTPS (a local server, a test CA): the published client shapes
complete authorize → token; every refused document leaves an unknown client (400, no redirect, no row)."""

import dataclasses
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import Application
from oauth2_provider.settings import oauth2_settings

from infra import ratelimit
from oauth_server.clients import cimd
from oauth_server.models import ClientRegistration
from tests.servers.https_documents import DocumentServer, serving_documents
from tests.support.authorize import authorize_url
from tests.support.clock import local_cache_clock
from tests.support.flow import consent_form, exchange
from tests.support.pkce import pkce_pair

CLAUDE_CODE = "/oauth/claude-code-client-metadata"
CLAUDE_AI = "/oauth/mcp-oauth-client-metadata"
CHATGPT = "/oauth/6f1c2a/client.json"
VSCODE = "/oauth/client-metadata.json"


@pytest.fixture(scope="session")
def document_server(tmp_path_factory) -> Iterator[DocumentServer]:
    with serving_documents(tmp_path_factory.mktemp("cimd-tls")) as server:
        yield server


@pytest.fixture
def documents(document_server: DocumentServer, settings, db) -> Iterator[DocumentServer]:
    """The document server, trusted (extraCAFile) and reachable on loopback (allowPrivateIPClientMetadata)."""
    settings.MUSTER_CONFIG = dataclasses.replace(
        settings.MUSTER_CONFIG, allow_private_ip_client_metadata=True, extra_ca_file=document_server.ca_file
    )
    document_server.clear()
    yield document_server
    document_server.clear()


@pytest.fixture
def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def audit_events(caplog):
    caplog.set_level(logging.INFO, logger="muster.audit")
    return caplog


def named(caplog, name: str) -> list[dict]:
    """The audit lines written so far for one event."""
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "muster.audit"]
    return [line for line in lines if line["event"] == name]


def caplog_text(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


def document(url: str, name: str, redirect_uris: list[str], **extra) -> dict:
    return {
        "client_id": url,
        "client_name": name,
        "redirect_uris": redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        **extra,
    }


def authorize_and_exchange(browser: Client, client_id: str, redirect_uri: str) -> dict:
    """The consent page names the client's host; allowing sends the code to `redirect_uri`; the code buys tokens."""
    verifier, challenge = pkce_pair()
    page = browser.get(authorize_url(client_id, challenge, redirect_uri=redirect_uri))
    assert page.status_code == 200, page.content
    assert page.context["client_host"] == "localhost"
    answer = browser.post("/oauth/authorize", {**consent_form(page), "allow": "Authorize"})
    assert answer.status_code == 302, answer.content
    location = answer["Location"]
    assert location.startswith(redirect_uri + "?")
    code = parse_qs(urlsplit(location).query)["code"][0]
    tokens = exchange(browser, client_id, code, verifier, redirect_uri=redirect_uri)
    assert tokens.status_code == 200, tokens.content
    return tokens.json()


def assert_cimd_public_client(client_id: str) -> None:
    application = Application.objects.get(client_id=client_id)
    assert application.client_type == Application.CLIENT_PUBLIC
    assert application.registration_source == Application.RegistrationSource.CIMD
    assert ClientRegistration.objects.get(application=application).gate == ClientRegistration.Gate.CIMD


def assert_unknown_client(browser: Client, client_id: str, redirect_uri: str = "https://claude.ai/cb") -> None:
    """/oauth/authorize answers 400 itself (never a redirect) and no Application row exists."""
    _, challenge = pkce_pair()
    answer = browser.get(authorize_url(client_id, challenge, redirect_uri=redirect_uri))
    assert answer.status_code == 400, answer.content
    assert "Location" not in answer
    assert answer.json()["error_description"] == "Invalid client_id parameter value."
    assert not Application.objects.filter(client_id=client_id).exists()


# --- the published client shapes ---


def test_claude_code_loopback_on_a_random_port(documents, browser, audit_events):
    url = documents.url(CLAUDE_CODE)
    documents.publish(
        CLAUDE_CODE,
        document(url, "Claude Code", ["http://localhost/callback", "http://127.0.0.1/callback"]),
        cache_control="max-age=600",
    )
    tokens = authorize_and_exchange(browser, url, "http://localhost:53917/callback")
    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"]
    assert_cimd_public_client(url)
    assert named(audit_events, "cimd_fetched")
    assert documents.fetches(CLAUDE_CODE) == 1  # authorize, consent and token reuse the stored document


def test_claude_ai_https_callback(documents, browser):
    url = documents.url(CLAUDE_AI)
    documents.publish(CLAUDE_AI, document(url, "Claude", ["https://claude.ai/api/mcp/auth_callback"]))
    authorize_and_exchange(browser, url, "https://claude.ai/api/mcp/auth_callback")
    assert_cimd_public_client(url)


def test_chatgpt_private_key_jwt_with_none_offered_becomes_public(documents, browser):
    url = documents.url(CHATGPT)
    documents.publish(
        CHATGPT,
        document(
            url,
            "ChatGPT",
            ["https://chatgpt.com/connector/oauth/6f1c2a"],
            token_endpoint_auth_method="private_key_jwt",
            token_endpoint_auth_methods_supported=["private_key_jwt", "none"],
            token_endpoint_auth_signing_alg="RS256",
            jwks_uri="https://chatgpt.com/oauth/6f1c2a/jwks.json",
            scope="mcp",
        ),
    )
    authorize_and_exchange(browser, url, "https://chatgpt.com/connector/oauth/6f1c2a")
    assert_cimd_public_client(url)


def test_vscode_loopback_and_web_redirects(documents, browser):
    url = documents.url(VSCODE)
    redirects = ["https://vscode.dev/redirect", "https://insiders.vscode.dev/redirect", "http://127.0.0.1/"]
    documents.publish(VSCODE, document(url, "Visual Studio Code", [*redirects, "http://127.0.0.1:33418/"]))
    authorize_and_exchange(browser, url, "http://127.0.0.1:41877/")
    assert_cimd_public_client(url)


# --- refused documents and fetches ---


def test_document_client_id_must_equal_the_url(documents, browser, audit_events):
    url = documents.url("/impostor.json")
    documents.publish("/impostor.json", document(documents.url(CLAUDE_AI), "Claude", ["https://claude.ai/cb"]))
    assert_unknown_client(browser, url)
    assert named(audit_events, "cimd_id_mismatch")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"client_name": None}, "client_name is required"),
        ({"redirect_uris": None}, "redirect_uris must be a non-empty array"),
        ({"redirect_uris": []}, "redirect_uris must be a non-empty array"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "the javascript scheme is never allowed"),
        ({"redirect_uris": ["http://claude.ai/cb"]}, "http is allowed only on loopback"),
        ({"redirect_uris": ["https://claude.ai/cb", "https://10.0.0.5/cb"]}, "private or link-local"),
        ({"client_secret": "s3cret"}, "must not include client_secret"),
        ({"token_endpoint_auth_method": "client_secret_basic"}, "no usable token_endpoint_auth_method"),
        (
            {
                "token_endpoint_auth_method": "private_key_jwt",
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            },
            "no usable token_endpoint_auth_method",
        ),
        ({"grant_types": ["client_credentials"]}, "unsupported grant_type"),
    ],
    ids=[
        "missing-client-name",
        "missing-redirect-uris",
        "empty-redirect-uris",
        "javascript-redirect",
        "http-non-loopback-redirect",
        "private-ip-redirect",
        "client-secret",
        "shared-secret-method",
        "private-key-jwt-only",
        "client-credentials",
    ],
)
def test_refused_document(documents, browser, audit_events, change, reason):
    url = documents.url("/refused.json")
    body = {**document(url, "Claude", ["https://claude.ai/cb"], client_uri="https://marker.example/"), **change}
    documents.publish("/refused.json", {k: v for k, v in body.items() if v is not None})
    assert_unknown_client(browser, url)
    failures = named(audit_events, "cimd_failed")
    assert failures and reason in failures[-1]["reason"]
    assert failures[-1]["outcome"] == "failure"
    assert "marker.example" not in caplog_text(audit_events)  # a reason, never the document


def test_unusable_client_at_the_token_endpoint_is_invalid_client(documents, client):
    url = documents.url("/refused.json")
    documents.publish("/refused.json", document(url, "", ["https://claude.ai/cb"]))
    answer = client.post("/oauth/token", {"grant_type": "authorization_code", "code": "x", "client_id": url})
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    assert not Application.objects.filter(client_id=url).exists()


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"status": 302, "headers": {"location": "/elsewhere.json"}}, "HTTP 302"),
        ({"content_type": "text/html"}, "not JSON"),
        ({"status": 404}, "HTTP 404"),
    ],
    ids=["redirect", "html", "not-found"],
)
def test_refused_response(documents, browser, audit_events, kwargs, reason):
    url = documents.url("/answer.json")
    documents.publish("/elsewhere.json", document(documents.url("/elsewhere.json"), "Claude", ["https://claude.ai/cb"]))
    documents.publish("/answer.json", document(url, "Claude", ["https://claude.ai/cb"]), **kwargs)
    assert_unknown_client(browser, url)
    assert reason in named(audit_events, "cimd_failed")[-1]["reason"]
    assert documents.fetches("/elsewhere.json") == 0  # the redirect was not followed


def test_oversized_document(documents, browser, audit_events):
    url = documents.url("/big.json")
    padding = "x" * (oauth2_settings.CIMD_MAX_DOCUMENT_SIZE + 1)
    documents.publish("/big.json", document(url, "Claude", ["https://claude.ai/cb"], client_uri=padding))
    assert_unknown_client(browser, url)
    assert "maximum allowed size" in named(audit_events, "cimd_failed")[-1]["reason"]


def test_untrusted_certificate_is_refused(documents, browser, settings, audit_events):
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, extra_ca_file="")
    url = documents.publish(CLAUDE_AI, document(documents.url(CLAUDE_AI), "Claude", ["https://claude.ai/cb"]))
    assert_unknown_client(browser, url)
    assert "could not fetch" in named(audit_events, "cimd_failed")[-1]["reason"]


def test_loopback_host_refused_without_allow_private_ip(documents, browser, settings, audit_events):
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, allow_private_ip_client_metadata=False)
    url = documents.publish(CLAUDE_AI, document(documents.url(CLAUDE_AI), "Claude", ["https://claude.ai/cb"]))
    assert_unknown_client(browser, url)
    assert documents.fetches(CLAUDE_AI) == 0
    assert named(audit_events, "cimd_blocked")[-1]["reason"] == "private_address"


@pytest.mark.parametrize(
    "client_id",
    [
        "https://localhost:{port}/doc.json?v=1",
        "https://localhost:{port}/doc.json#frag",
        "https://user@localhost:{port}/doc.json",
        "https://localhost:{port}",
        "https://localhost:{port}/a/../doc.json",
    ],
    ids=["query", "fragment", "userinfo", "no-path", "dot-segment"],
)
def test_malformed_client_id_url(documents, browser, client_id):
    url = client_id.format(port=documents.port)
    documents.publish("/doc.json", document(url, "Claude", ["https://claude.ai/cb"]))
    assert_unknown_client(browser, url)
    assert documents.fetches("/doc.json") == 0


def test_per_host_fetch_limit(documents, browser, settings, audit_events):
    limits = dataclasses.replace(settings.MUSTER_CONFIG.rate_limit, cimd_burst=1, cimd_rate=1)
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, rate_limit=limits)
    ratelimit.reset()
    first = documents.publish("/first.json", document(documents.url("/first.json"), "One", ["https://claude.ai/cb"]))
    second = documents.publish("/second.json", document(documents.url("/second.json"), "Two", ["https://claude.ai/cb"]))
    _, challenge = pkce_pair()
    assert browser.get(authorize_url(first, challenge, redirect_uri="https://claude.ai/cb")).status_code == 200
    assert_unknown_client(browser, second)
    assert documents.fetches("/second.json") == 0
    assert named(audit_events, "cimd_blocked")[-1]["reason"] == "rate_limited"


def test_failure_is_backed_off_not_cached_as_success(documents, browser, settings, monkeypatch):
    """A refused document is not stored; its URL is not fetched again until the backoff passes (DOT's rule)."""
    assert oauth2_settings.CIMD_FAILURE_BACKOFF_SECONDS == 300
    clock = local_cache_clock(settings, monkeypatch)  # the backoff is a cache entry that times out
    url = documents.url(CLAUDE_AI)
    documents.publish(CLAUDE_AI, document(url, "", ["https://claude.ai/api/mcp/auth_callback"]))
    assert_unknown_client(browser, url)
    documents.publish(CLAUDE_AI, document(url, "Claude", ["https://claude.ai/api/mcp/auth_callback"]))
    assert_unknown_client(browser, url)  # fixed, but still backed off
    assert documents.fetches(CLAUDE_AI) == 1
    clock.advance(290)
    assert_unknown_client(browser, url)  # shortly before the five minutes are over
    assert documents.fetches(CLAUDE_AI) == 1
    clock.advance(10)
    authorize_and_exchange(browser, url, "https://claude.ai/api/mcp/auth_callback")
    assert documents.fetches(CLAUDE_AI) == 2
    assert_cimd_public_client(url)


def test_stale_document_is_fetched_again_and_registered_once(documents, browser):
    url = documents.url(CLAUDE_AI)
    callback = "https://claude.ai/api/mcp/auth_callback"
    documents.publish(CLAUDE_AI, document(url, "Claude", [callback]))
    authorize_and_exchange(browser, url, callback)
    Application.objects.filter(client_id=url).update(cimd_expires_at=timezone.now() - timedelta(seconds=1))
    documents.publish(CLAUDE_AI, document(url, "Claude (renamed)", [callback]))
    authorize_and_exchange(browser, url, callback)
    assert documents.fetches(CLAUDE_AI) == 2
    application = Application.objects.get(client_id=url)
    assert application.name == "Claude (renamed)"
    assert ClientRegistration.objects.filter(application=application, gate="cimd").count() == 1


def test_failed_refresh_keeps_the_last_good_document(documents, browser):
    """DOT keeps a stored client when its re-fetch fails, so a blip at the client's host locks nobody out."""
    url = documents.url(CLAUDE_AI)
    callback = "https://claude.ai/api/mcp/auth_callback"
    documents.publish(CLAUDE_AI, document(url, "Claude", [callback]))
    authorize_and_exchange(browser, url, callback)
    Application.objects.filter(client_id=url).update(cimd_expires_at=timezone.now() - timedelta(seconds=1))
    documents.publish(CLAUDE_AI, {"broken": True}, status=500)
    authorize_and_exchange(browser, url, callback)
    assert Application.objects.get(client_id=url).name == "Claude"


def test_cimd_disabled_means_unknown_client(documents, browser, settings):
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, enable_cimd=False)
    url = documents.publish(CLAUDE_AI, document(documents.url(CLAUDE_AI), "Claude", ["https://claude.ai/cb"]))
    assert_unknown_client(browser, url)
    assert documents.fetches(CLAUDE_AI) == 0


def test_development_switches_are_logged(settings, caplog):
    settings.MUSTER_CONFIG = dataclasses.replace(
        settings.MUSTER_CONFIG, allow_private_ip_client_metadata=True, extra_ca_file="/etc/dev-ca.pem"
    )
    with caplog.at_level(logging.WARNING, logger="muster.cimd"):
        cimd.log_development_switches()
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("allowPrivateIPClientMetadata" in m for m in messages)
    assert any("/etc/dev-ca.pem" in m for m in messages)


def test_no_warning_by_default(settings, caplog):
    settings.MUSTER_CONFIG = dataclasses.replace(
        settings.MUSTER_CONFIG, allow_private_ip_client_metadata=False, extra_ca_file=""
    )
    with caplog.at_level(logging.WARNING, logger="muster.cimd"):
        cimd.log_development_switches()
    assert not caplog.records
