"""End to end on the production shape: two uvicorn workers sharing PostgreSQL and Redis."""

import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.servers.site import Site, production_site, refresh_all_at_once, signed_in_tokens
from tests.support.flow import exchange, issue_code, refresh, revoke, with_password

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with production_site(tmp_path_factory.mktemp("site-postgres-redis")) as server:
        yield server


@pytest.fixture(scope="module")
def client_id(site: Site) -> str:
    return site.create_public_client()


def test_twenty_concurrent_refreshes_rotate_once_across_two_workers(
    site: Site, client_id: str, http: httpx.Client
) -> None:
    # Given a signed-in client's tokens
    first = signed_in_tokens(site, client_id)

    # When 20 requests, spread over both workers, present its refresh token at the same moment
    answers = refresh_all_at_once(site, client_id, first["refresh_token"], 20)

    # Then all get the same new pair
    assert [answer.status_code for answer in answers] == [200] * 20, [a.text for a in answers]
    bodies = [answer.json() for answer in answers]
    assert all(body == bodies[0] for body in bodies), {body["refresh_token"] for body in bodies}
    refresh_token = bodies[0]["refresh_token"]
    assert refresh_token != first["refresh_token"]

    # and the token was rotated exactly once; its successor is live and rotates normally
    assert site.family_size(refresh_token) == 2
    onward = refresh(site.over(http), client_id, refresh_token)
    assert onward.status_code == 200, onward.text
    assert site.family_size(onward.json()["refresh_token"]) == 3


def test_full_flow_across_two_workers(site: Site, client_id: str, http: httpx.Client) -> None:
    # Given a browser that signs in and allows (its session lives in the shared database and cache)
    state = secrets.token_urlsafe(32)
    user, password = site.username, site.password
    code, verifier, query = issue_code(site.over(http), client_id, login=with_password(user, password), state=state)
    assert query["state"] == [state]
    assert query["iss"] == [site.base_url]

    # When the client exchanges the code and refreshes
    issued = exchange(site.over(http), client_id, code, verifier)
    assert issued.status_code == 200, issued.text
    first = issued.json()
    assert first["expires_in"] == 1800
    rotated = refresh(site.over(http), client_id, first["refresh_token"])
    assert rotated.status_code == 200, rotated.text

    # Then a replay within the grace gets the same pair, whichever worker answers it
    for _ in range(4):
        with httpx.Client(follow_redirects=False, timeout=30.0) as new_connection:
            replayed = refresh(site.over(new_connection), client_id, first["refresh_token"])
        assert replayed.status_code == 200, replayed.text
        assert replayed.json() == rotated.json()

    # When the client revokes its newest refresh token, the family is gone
    assert revoke(site.over(http), client_id, rotated.json()["refresh_token"]).status_code == 200
    for token in (rotated.json()["refresh_token"], first["refresh_token"]):
        answer = refresh(site.over(http), client_id, token)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "invalid_grant"
