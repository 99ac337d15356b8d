"""End to end with the official MCP Python SDK as the client: discovery, sign-in, tools, refresh and revocation.

The SDK's `OAuthClientProvider` drives the whole OAuth dance against the real server; a headless "browser"
(an httpx client that keeps cookies) plays the user on the sign-in and consent pages.
"""

import json
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import anyio.to_thread
import httpx
import pytest

from tests.servers.sdk_client import SdkUser, structured, texts
from tests.servers.site import Site, production_site, signed_in_tokens
from tests.support.flow import exchange, issue_code, revoke, with_password

pytestmark = [pytest.mark.e2e]

PROTOCOL_VERSION = "2025-06-18"
MCP_ACCEPT = "application/json, text/event-stream"
TOKEN_LIFETIME_SECONDS = 3


def token_posts(site: Site) -> int:
    """How many POST /oauth/token the server's access log shows."""
    return len(re.findall(r'"POST /oauth/token HTTP/1\.1" 200', site.log_path.read_text(errors="replace")))


# --- raw HTTP to /mcp, as a client that already holds a token ---


def mcp_headers(access_token: str, session_id: str | None = None) -> dict[str, str]:
    headers = {
        "authorization": f"Bearer {access_token}",
        "accept": MCP_ACCEPT,
        "content-type": "application/json",
        "mcp-protocol-version": PROTOCOL_VERSION,
    }
    if session_id:
        headers["mcp-session-id"] = session_id
    return headers


def initialize_body() -> bytes:
    params = {
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "e2e-raw", "version": "1"},
    }
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}).encode()


def tools_list_body() -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}).encode()


def initialized_body() -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode()


def post_mcp(
    http: httpx.Client, site: Site, body: bytes, access_token: str, session_id: str | None = None
) -> httpx.Response:
    return http.post(f"{site.base_url}/mcp", content=body, headers=mcp_headers(access_token, session_id))


def post_mcp_on_a_new_connection(site: Site, body: bytes, access_token: str) -> httpx.Response:
    with httpx.Client(follow_redirects=False, timeout=30.0) as fresh:
        return post_mcp(fresh, site, body, access_token)


def describe(answer: httpx.Response) -> str:
    return f"{answer.status_code} {dict(answer.headers)} {answer.text[:500]}"


def assert_invalid_token_challenge(site: Site, answer: httpx.Response) -> None:
    assert answer.status_code == 401, describe(answer)
    challenge = answer.headers.get("www-authenticate", "")
    assert challenge.lower().startswith("bearer "), challenge
    assert 'error="invalid_token"' in challenge, challenge
    assert f'resource_metadata="{site.base_url}/.well-known/oauth-protected-resource/mcp"' in challenge, challenge


def refused_within(site: Site, access_token: str, seconds: float) -> tuple[httpx.Response, float]:
    """Poll /mcp with the token until it is refused or `seconds` pass; the last answer and when it came."""
    started = time.monotonic()
    while True:
        answer = post_mcp_on_a_new_connection(site, initialize_body(), access_token)
        elapsed = time.monotonic() - started
        if answer.status_code != 200 or elapsed > seconds:
            return answer, elapsed
        time.sleep(0.05)


# --- one server on SQLite, with short-lived access tokens so the SDK must refresh ---


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    env = {"MUSTER_ACCESS_TOKEN_LIFETIME": f"{TOKEN_LIFETIME_SECONDS}s"}
    with Site(tmp_path_factory.mktemp("site-mcp-sdk"), extra_env=env) as running:
        yield running


@pytest.fixture(scope="module")
def client_id(site: Site) -> str:
    return site.create_public_client("E2E SDK client")


def test_sdk_client_discovers_signs_in_and_calls_tools(site: Site, client_id: str) -> None:
    user = SdkUser(site, client_id)

    async def session() -> dict[str, Any]:
        async with user.http() as http, user.connect(http) as client:
            listed = await client.list_tools()
            whoami = structured(await client.call_tool("whoami"))
            echoed = await client.call_tool("echo", {"text": "hi"})
            return {
                "server": client.server_info,
                "tools": {tool.name for tool in listed.tools},
                "whoami": whoami,
                "echo": texts(echoed),
                "echo_structured": structured(echoed),
            }

    try:
        seen = anyio.run(session)
    finally:
        user.browser.close()

    # The SDK found the authorization server from the 401 alone, and sent the user there once
    assert len(user.browser.authorization_urls) == 1
    sent = parse_qs(urlsplit(user.browser.authorization_urls[0]).query)
    assert urlsplit(user.browser.authorization_urls[0]).path == "/oauth/authorize"
    assert sent["client_id"] == [client_id]
    assert sent["redirect_uri"] == [user.redirect_uri]
    assert sent["resource"] == [f"{site.base_url}/mcp"]
    assert "mcp" in sent["scope"][0].split()  # the challenge's scope (the SDK adds offline_access if advertised)
    assert sent["code_challenge_method"] == ["S256"]
    assert user.browser.sign_ins == 1
    # and exchanged the code for tokens with refresh
    assert len(user.storage.issued) == 1
    assert user.storage.issued[0].refresh_token

    # initialize, tools/list and both tools worked with the token
    assert seen["server"] is not None and seen["server"].name == "muster-demo"
    assert {"whoami", "echo"} <= seen["tools"]
    assert seen["whoami"]["subject"] == site.username
    assert seen["whoami"]["client_id"] == client_id
    assert "mcp" in seen["whoami"]["scopes"]
    assert seen["whoami"]["session_id"]
    assert seen["echo"] == ["hi"]
    assert seen["echo_structured"] in ({"result": "hi"}, None)


def test_sdk_client_refreshes_when_the_access_token_expires(site: Site, client_id: str) -> None:
    user = SdkUser(site, client_id)
    posts_before = token_posts(site)

    async def session() -> tuple[dict[str, Any], dict[str, Any]]:
        async with user.http() as http, user.connect(http) as client:
            first = structured(await client.call_tool("whoami"))
            # (inherent: the token expires on the server's clock, in another process, so real time has to pass)
            await anyio.sleep(TOKEN_LIFETIME_SECONDS + 1)
            second = structured(await client.call_tool("whoami"))
            return first, second

    try:
        first, second = anyio.run(session)
    finally:
        user.browser.close()

    # The call after expiry succeeded, as the same user through the same client and sign-in
    assert second["subject"] == first["subject"] == site.username
    assert second["client_id"] == client_id
    assert second["session_id"] == first["session_id"], "a refresh must stay in the sign-in's token family"
    # through a refresh: new access and refresh tokens, not a new sign-in
    assert len(user.storage.issued) >= 2, user.storage.issued
    issued, refreshed = user.storage.issued[0], user.storage.issued[-1]
    assert refreshed.access_token != issued.access_token
    assert refreshed.refresh_token and refreshed.refresh_token != issued.refresh_token
    assert refreshed.expires_in == TOKEN_LIFETIME_SECONDS
    assert len(user.browser.authorization_urls) == 1, "the user was asked to sign in again"
    assert user.browser.sign_ins == 1
    # and the server saw the code exchange plus at least one refresh at its token endpoint
    assert token_posts(site) - posts_before >= 2, site.log_tail()


def test_a_revoked_token_is_refused_at_mcp(site: Site, client_id: str, http: httpx.Client) -> None:
    # Given a signed-in client whose token works at /mcp
    tokens = signed_in_tokens(site, client_id)
    opened = post_mcp(http, site, initialize_body(), tokens["access_token"])
    assert opened.status_code == 200, describe(opened)

    # When the client revokes its refresh token (and with it the sign-in)
    revoked = revoke(site.over(http), client_id, tokens["refresh_token"])
    assert revoked.status_code == 200, revoked.text

    # Then within a second the same bearer is refused with a challenge pointing at the resource metadata
    answer, elapsed = refused_within(site, tokens["access_token"], 1.0)
    assert_invalid_token_challenge(site, answer)
    assert elapsed <= 1.0, f"the revoked token still worked {elapsed:.2f} s later"
    assert answer.json()["error"] == "invalid_token"


# --- the production shape: two uvicorn workers sharing PostgreSQL and Redis ---


@pytest.fixture(scope="module")
def shared_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with production_site(tmp_path_factory.mktemp("site-mcp-two-workers")) as server:
        yield server


@pytest.mark.postgres
@pytest.mark.redis
def test_revocation_through_one_worker_is_refused_by_the_other_within_a_second(
    shared_site: Site, http: httpx.Client
) -> None:
    site = shared_site
    client_id = site.create_public_client("E2E two-worker client")
    tokens = signed_in_tokens(site, client_id)

    # Given a token that every worker has validated, and so cached (20 requests on new connections)
    answers = [post_mcp_on_a_new_connection(site, initialize_body(), tokens["access_token"]) for _ in range(20)]
    assert [answer.status_code for answer in answers] == [200] * 20, [describe(a) for a in answers if a.is_error]

    # When the client revokes through whichever worker answers
    revoked = revoke(site.over(http), client_id, tokens["refresh_token"])
    assert revoked.status_code == 200, revoked.text
    time.sleep(1.0)  # (inherent: the promise is "within a second", so the check comes a second later, not sooner)

    # Then a second later every worker refuses it
    answers = [post_mcp_on_a_new_connection(site, initialize_body(), tokens["access_token"]) for _ in range(20)]
    statuses = [answer.status_code for answer in answers]
    assert statuses == [401] * 20, [describe(answer) for answer in answers if answer.status_code != 401]
    for answer in answers:
        assert_invalid_token_challenge(site, answer)


@pytest.fixture(scope="module")
def session_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Two workers in front of an app that opens MCP sessions (the demo app is stateless)."""
    app = {"MUSTER_MCP_APP": "tests.servers.identity_app:app"}
    with production_site(tmp_path_factory.mktemp("site-mcp-sessions"), extra_env=app) as server:
        yield server


@pytest.mark.postgres
@pytest.mark.redis
def test_a_session_opened_by_one_user_is_not_found_for_another(session_site: Site, http: httpx.Client) -> None:
    site = session_site
    client_id = site.create_public_client("E2E session client")
    bob, bob_password = f"bob{secrets.token_hex(3)}", secrets.token_urlsafe(18)
    site.manage(
        "createsuperuser",
        "--noinput",
        "--username",
        bob,
        "--email",
        f"{bob}@example.com",
        extra_env={"DJANGO_SUPERUSER_PASSWORD": bob_password},
    )
    alice_tokens = signed_in_tokens(site, client_id)
    with httpx.Client(follow_redirects=False, timeout=30.0) as bob_browser:
        code, verifier, _ = issue_code(site.over(bob_browser), client_id, login=with_password(bob, bob_password))
        issued = exchange(site.over(bob_browser), client_id, code, verifier)
    assert issued.status_code == 200, issued.text
    bob_tokens = issued.json()

    # Given a session Alice opened (and uses, on her own keep-alive connection)
    opened = post_mcp(http, site, initialize_body(), alice_tokens["access_token"])
    assert opened.status_code == 200, describe(opened)
    session_id = opened.headers["mcp-session-id"]

    # When Bob presents Alice's session id with his own valid token, on either worker
    for _ in range(6):
        with httpx.Client(follow_redirects=False, timeout=30.0) as fresh:
            answer = post_mcp(fresh, site, tools_list_body(), bob_tokens["access_token"], session_id)
        # Then the gateway says there is no such session for him
        assert answer.status_code == 404, describe(answer)
        assert answer.json()["error"] == "session_not_found", describe(answer)

    # while Alice's own token still reaches her session
    listed = post_mcp(http, site, tools_list_body(), alice_tokens["access_token"], session_id)
    assert listed.status_code == 200, describe(listed)
    assert listed.json()["identity"]["subject"] == site.username


@pytest.mark.postgres
@pytest.mark.redis
def test_sdk_client_keeps_its_session_across_two_workers(shared_site: Site) -> None:
    site = shared_site
    user = SdkUser(site, site.create_public_client("E2E SDK two-worker client"))

    async def session() -> list[str]:
        async with user.http() as http, user.connect(http) as client:
            return [structured(await client.call_tool("whoami"))["subject"] for _ in range(5)]

    try:
        subjects = anyio.run(session)
    finally:
        user.browser.close()
    assert subjects == [site.username] * 5
