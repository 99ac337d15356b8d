"""End to end over real HTTP: uvicorn serving the site on SQLite, driven like a browser and an MCP client."""

import secrets
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from tests.servers.processes import PROJECT_DIR, free_port
from tests.servers.site import Site, manage_command, refresh_all_at_once, signed_in_tokens, site_env, uvicorn_command
from tests.support.flow import exchange, issue_code, refresh, revoke, with_password

pytestmark = [pytest.mark.e2e]

GRACE_SECONDS = 2
ONE_MIB = 1 << 20


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with Site(tmp_path_factory.mktemp("site"), grace=f"{GRACE_SECONDS}s") as running:
        yield running


@pytest.fixture(scope="module")
def client_id(site: Site) -> str:
    return site.create_public_client()


def assert_invalid_grant(answer: httpx.Response) -> None:
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_grant"


def assert_no_store(answer: httpx.Response) -> None:
    assert answer.headers.get("cache-control") == "no-store", dict(answer.headers)


def test_full_flow_against_the_real_server(site: Site, client_id: str, http: httpx.Client) -> None:
    # Given a pre-registered public client and a browser that signs in locally and allows
    state = secrets.token_urlsafe(32)
    user, password = site.username, site.password
    code, verifier, query = issue_code(site.over(http), client_id, login=with_password(user, password), state=state)
    assert query["state"] == [state]
    assert query["iss"] == [site.base_url]

    # When the client exchanges the code
    issued = exchange(site.over(http), client_id, code, verifier)
    assert issued.status_code == 200, issued.text
    assert_no_store(issued)
    first = issued.json()
    assert first["expires_in"] == 1800
    assert first["token_type"] == "Bearer"
    assert first["scope"] == "mcp"
    assert first["access_token"] and first["refresh_token"]

    # Then a refresh rotates the pair
    rotated = refresh(site.over(http), client_id, first["refresh_token"])
    rotated_at = time.monotonic()
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]

    # and replaying the rotated token within the grace gets exactly the same new pair
    replayed = refresh(site.over(http), client_id, first["refresh_token"])
    assert replayed.status_code == 200, replayed.text
    assert time.monotonic() - rotated_at < GRACE_SECONDS, "the replay came too late to test the grace"
    assert replayed.json() == second

    # When the rotated token is replayed after the grace
    # (inherent: the grace runs on the server's clock, in another process, so real time has to pass)
    time.sleep(max(0.0, rotated_at + GRACE_SECONDS + 1 - time.monotonic()))
    assert_invalid_grant(refresh(site.over(http), client_id, first["refresh_token"]))
    # Then the whole family is revoked: the newest refresh token fails too
    assert_invalid_grant(refresh(site.over(http), client_id, second["refresh_token"]))

    # Given a fresh sign-in and its tokens
    third = signed_in_tokens(site, client_id)
    # When the client revokes its refresh token
    revoked = revoke(site.over(http), client_id, third["refresh_token"])
    assert revoked.status_code == 200, revoked.text
    # Then it no longer refreshes
    assert_invalid_grant(refresh(site.over(http), client_id, third["refresh_token"]))


def test_twenty_concurrent_refreshes_rotate_once(site: Site, client_id: str, http: httpx.Client) -> None:
    # Given a signed-in client's tokens
    first = signed_in_tokens(site, client_id)

    # When 20 requests present its refresh token at the same moment
    started = time.monotonic()
    answers = refresh_all_at_once(site, client_id, first["refresh_token"], 20)
    elapsed = time.monotonic() - started

    # Then all get the same new pair
    assert [answer.status_code for answer in answers] == [200] * 20, [a.text for a in answers]
    assert elapsed < GRACE_SECONDS, f"the burst took {elapsed:.2f} s, longer than the grace it relies on"
    bodies = [answer.json() for answer in answers]
    pairs = {(body["access_token"], body["refresh_token"]) for body in bodies}
    assert len(pairs) == 1, f"{len(pairs)} different pairs were issued"
    assert all(body == bodies[0] for body in bodies)
    refresh_token = bodies[0]["refresh_token"]
    assert refresh_token != first["refresh_token"]

    # and the token was rotated exactly once: the family holds the first token and one successor
    assert site.family_size(refresh_token) == 2
    # and that successor is live: it rotates once more, normally
    onward = refresh(site.over(http), client_id, refresh_token)
    assert onward.status_code == 200, onward.text
    assert onward.json()["refresh_token"] not in (first["refresh_token"], refresh_token)
    assert site.family_size(onward.json()["refresh_token"]) == 3


def test_oversized_bodies_are_refused_with_413(site: Site, client_id: str, http: httpx.Client) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    padding = b"&padding=" + b"x" * ONE_MIB

    # When a body declares more than 1 MiB in its Content-Length
    body = b"grant_type=refresh_token" + padding
    declared = http.post(f"{site.base_url}/oauth/token", content=body, headers=form)
    # Then it is refused before anyone reads it
    assert declared.status_code == 413, declared.text
    assert declared.json()["error"] == "invalid_request"
    assert "content-length" in declared.request.headers

    # When a chunked body (no Content-Length) grows past 1 MiB
    def chunks() -> Iterator[bytes]:
        yield b"grant_type=refresh_token&padding="
        for _ in range(17):
            yield b"x" * (64 * 1024)

    chunked = http.post(f"{site.base_url}/oauth/token", content=chunks(), headers=form)
    # Then it is refused as well
    assert chunked.request.headers.get("transfer-encoding") == "chunked"
    assert chunked.status_code == 413, chunked.text
    assert chunked.json()["error"] == "invalid_request"

    # And a normal request still works afterwards
    tokens = signed_in_tokens(site, client_id)
    assert refresh(site.over(http), client_id, tokens["refresh_token"]).status_code == 200


def test_discovery_documents_over_http(site: Site, client_id: str, http: httpx.Client) -> None:
    # The authorization server metadata names this server as issuer, every endpoint under it
    metadata = http.get(f"{site.base_url}/.well-known/oauth-authorization-server")
    assert metadata.status_code == 200, metadata.text
    assert metadata.headers["cache-control"] == "public, max-age=3600"
    document = metadata.json()
    assert document["issuer"] == site.base_url
    for name in ("authorization_endpoint", "token_endpoint", "revocation_endpoint"):
        assert document[name].startswith(site.base_url + "/"), (name, document[name])
    assert document["token_endpoint"] == f"{site.base_url}/oauth/token"

    # The protected resource metadata names /mcp as the resource, this server as its authorization server
    resource = http.get(f"{site.base_url}/.well-known/oauth-protected-resource/mcp")
    assert resource.status_code == 200, resource.text
    assert resource.headers["cache-control"] == "public, max-age=3600"
    assert resource.json()["resource"] == site.base_url + "/mcp"
    assert resource.json()["authorization_servers"] == [site.base_url]

    # Token endpoint answers are never cached, successes and failures alike
    tokens = signed_in_tokens(site, client_id)
    assert_no_store(refresh(site.over(http), client_id, tokens["refresh_token"]))
    failed = refresh(site.over(http), client_id, "not-a-refresh-token")
    assert_invalid_grant(failed)
    assert_no_store(failed)


def test_server_refuses_to_start_with_a_bad_configuration(tmp_path: Path) -> None:
    # Given a configuration whose baseUrl is plain http on a public host
    port = free_port()
    env: Mapping[str, str] = site_env("http://example.com", f"sqlite:///{tmp_path / 'site.sqlite3'}")

    # When uvicorn starts the site
    started = subprocess.run(
        uvicorn_command(port),
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    # Then it exits non-zero at once, saying which setting is wrong on one line
    assert started.returncode != 0, started.stderr
    lines = [line for line in started.stderr.splitlines() if "baseUrl" in line]
    assert len(lines) == 1, started.stderr
    assert "https" in lines[0]

    # And manage.py check refuses the same configuration
    checked = subprocess.run(
        manage_command("check"),
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode != 0, checked.stdout
    assert "baseUrl" in checked.stderr + checked.stdout
