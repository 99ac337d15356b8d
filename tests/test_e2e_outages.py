"""Outages on the real server: its own PostgreSQL stopped and its own Redis paused or killed give 503 + Retry-After
in each endpoint's format (never a 500, never HTML to an API client), /health/ready names what is down, and the
site recovers by itself once the service is back."""

import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from infra.outages import RETRY_AFTER_SECONDS
from tests.servers.postgres_process import OwnPostgres, own_postgres
from tests.servers.redis_process import own_redis
from tests.servers.site import Site
from tests.support.authorize import REDIRECT_URI, authorize_url
from tests.support.flow import refresh, revoke, tokens, with_password
from tests.support.pkce import pkce_pair
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

RECOVERY_SECONDS = 20.0  # generous for a loaded machine; measured: about 2 s even after a 40 s outage
API = {"Accept": "application/json"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
MCP = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


@dataclass
class Running:
    site: Site
    postgres: OwnPostgres
    redis: subprocess.Popen[bytes]
    client_id: str
    browser: httpx.Client  # signed in: its session lives in Redis and the database

    def url(self, path: str) -> str:
        return f"{self.site.base_url}{path}"

    def fresh_tokens(self) -> dict[str, str]:
        return tokens(self.site.over(self.browser), self.client_id)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    workdir = tmp_path_factory.mktemp("outages")
    with own_postgres() as postgres, own_redis(workdir) as (redis_url, redis_process):
        site = Site(workdir / "site", database_url=postgres.url, redis_url=redis_url)
        with site, httpx.Client(base_url=site.base_url, follow_redirects=False, timeout=30.0) as browser:
            client_id = site.create_public_client()
            tokens(site.over(browser), client_id, login=with_password(site.username, site.password))
            yield Running(site, postgres, redis_process, client_id, browser)


def assert_unavailable_json(answer: httpx.Response) -> None:
    assert answer.status_code == 503, (answer.status_code, answer.text[:300])
    assert answer.headers["content-type"] == "application/json", answer.headers["content-type"]
    assert answer.json()["error"] == "temporarily_unavailable"
    assert answer.headers["retry-after"] == str(RETRY_AFTER_SECONDS)


def assert_unavailable_page(answer: httpx.Response) -> None:
    assert answer.status_code == 503, (answer.status_code, answer.text[:300])
    assert answer.headers["content-type"].startswith("text/html")
    assert "briefly unavailable" in answer.text
    assert answer.headers["retry-after"] == str(RETRY_AFTER_SECONDS)


Expected = int | Callable[[httpx.Response], None]
# As measured; docs/operations.md "Failure modes" has the same table.
DATABASE_DOWN: dict[str, Expected] = {
    "token": assert_unavailable_json,
    "mcp": assert_unavailable_json,
    "revoke": assert_unavailable_json,
    "register": assert_unavailable_json,
    "authorize (API client)": assert_unavailable_json,
    "authorize (browser)": assert_unavailable_page,
    "account (browser)": assert_unavailable_page,
    "admin (browser)": assert_unavailable_page,
}
REDIS_DOWN: dict[str, Expected] = {
    "token": assert_unavailable_json,  # refresh locks and grace live in Redis
    "mcp": 200,  # the database answers for the token cache
    "revoke": 200,  # committed; the token cache's tombstone is skipped
    "register": assert_unavailable_json,  # the per-address registration lock lives in Redis
    "authorize (API client)": 302,  # no session to read: sent to sign in
    "authorize (browser)": assert_unavailable_page,  # the session's cached copy cannot be read
    "account (browser)": assert_unavailable_page,
    "admin (browser)": assert_unavailable_page,
}


def endpoint_answers(running: Running, tokens_: dict[str, str]) -> dict[str, httpx.Response]:
    """One request to each endpoint, as its usual caller makes it."""
    http = httpx.Client(timeout=30.0, follow_redirects=False)
    _, challenge = pkce_pair()
    authorize = authorize_url(running.client_id, challenge)
    registration = {"redirect_uris": [REDIRECT_URI], "client_name": "outage", "token_endpoint_auth_method": "none"}
    with http:
        return {
            "token": refresh(running.site.over(http), running.client_id, tokens_["refresh_token"]),
            "mcp": http.post(
                running.url("/mcp"),
                content=json.dumps(PING),
                headers={**MCP, "Authorization": f"Bearer {tokens_['access_token']}"},
            ),
            "revoke": revoke(running.site.over(http), running.client_id, tokens_["access_token"]),
            "register": http.post(running.url("/oauth/register"), json=registration, headers=API),
            "authorize (API client)": http.get(running.url(authorize), headers=API),
            "authorize (browser)": running.browser.get(authorize, headers=BROWSER),
            "account (browser)": running.browser.get("/account", headers=BROWSER),
            "admin (browser)": running.browser.get("/admin/", headers=BROWSER),
        }


def assert_answered(answers: dict[str, httpx.Response], expected: dict[str, Expected]) -> None:
    """Each endpoint answered as `expected` says: a 503 in its format, or a plain status."""
    assert answers.keys() == expected.keys()
    for name, answer in answers.items():
        want = expected[name]
        try:
            if isinstance(want, int):
                assert answer.status_code == want, (answer.status_code, answer.text[:300])
            else:
                want(answer)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc


def ready(running: Running) -> httpx.Response:
    return httpx.get(running.url("/health/ready"), timeout=30.0)


def recovered(running: Running) -> bool:
    fresh = running.fresh_tokens()
    with httpx.Client(timeout=30.0) as http:
        return refresh(running.site.over(http), running.client_id, fresh["refresh_token"]).status_code == 200


def test_everything_is_ready_while_both_services_run(running: Running) -> None:
    answer = ready(running)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "ready", "database": "ok", "cache": "ok"}


def test_a_stopped_database_gives_503_everywhere_and_the_site_recovers_by_itself(running: Running) -> None:
    # Given tokens issued while the database ran (never used on /mcp, so no cache knows them)
    issued = running.fresh_tokens()

    # When the database stops
    running.postgres.stop()
    try:
        answers = endpoint_answers(running, issued)
        readiness = ready(running)
        liveness = httpx.get(running.url("/health"), timeout=30.0)
    finally:
        running.postgres.start()

    # Then every endpoint answered 503 with Retry-After in its format, readiness named the database
    assert_answered(answers, DATABASE_DOWN)
    assert readiness.status_code == 503
    assert readiness.json() == {"status": "unavailable", "database": "unavailable", "cache": "ok"}
    assert liveness.json() == {"status": "ok"}  # the process itself is alive

    # and once the database is back, the site serves again without a restart
    assert eventually(lambda: ready(running).status_code == 200, RECOVERY_SECONDS), ready(running).text
    assert eventually(lambda: recovered(running), RECOVERY_SECONDS)


def test_a_hung_redis_gives_503_where_it_is_needed_and_the_site_recovers(running: Running) -> None:
    # Given tokens issued while Redis ran
    issued = running.fresh_tokens()

    # When Redis stops answering (paused: every call waits for its socket timeout)
    os.kill(running.redis.pid, signal.SIGSTOP)
    try:
        answers = endpoint_answers(running, issued)
        readiness = ready(running)
    finally:
        os.kill(running.redis.pid, signal.SIGCONT)

    # Then what needs Redis answered 503 in its format, the rest was served, readiness named the cache
    assert_answered(answers, REDIS_DOWN)
    assert readiness.status_code == 503
    assert readiness.json() == {"status": "unavailable", "database": "ok", "cache": "unavailable"}

    # and once Redis answers again, so does the site
    assert eventually(lambda: ready(running).status_code == 200, RECOVERY_SECONDS), ready(running).text
    assert eventually(lambda: recovered(running), RECOVERY_SECONDS)


def test_a_killed_redis_gives_503_where_it_is_needed_never_500(running: Running) -> None:
    issued = running.fresh_tokens()

    running.redis.kill()  # last: the module's Redis does not come back
    running.redis.wait(timeout=10)
    answers = endpoint_answers(running, issued)
    readiness = ready(running)

    assert_answered(answers, REDIS_DOWN)
    assert readiness.status_code == 503
    assert readiness.json() == {"status": "unavailable", "database": "ok", "cache": "unavailable"}
