"""Shared fixtures: a clean shared cache, users, clients, servers and a browser (helpers are in tests/support)."""

import logging
import os
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
from oauth2_provider.models import Application
from playwright.sync_api import Browser, Page

from infra import ratelimit, redis_outage
from oauth_server.upstream import discovery
from tests.servers.browser import TIMEOUT_MS, chromium
from tests.servers.loopback_app import LoopbackApp, loopback_app
from tests.servers.oidc_provider import OidcProvider
from tests.servers.redis_process import own_redis as own_redis_server
from tests.support.authorize import REDIRECT_URI
from tests.support.cache import clear_shared_cache, use_redis
from tests.support.services import delete_redis_keys, require_redis, unique_prefix
from tests.support.users import PASSWORD

if TYPE_CHECKING:
    from tests.servers.site import Site

# Metrics written by tests go to a throw-away directory, never to the site's var/prometheus.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="muster-test-metrics-"))


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """Each test starts with an empty shared cache, fresh rate-limit buckets and no Redis marked down."""
    redis_outage.forget()
    clear_shared_cache()
    ratelimit.reset()
    yield
    redis_outage.forget()
    clear_shared_cache()
    ratelimit.reset()


@pytest.fixture
def audit_log(caplog) -> Iterator[None]:
    """Let caplog see `muster.audit`, which does not propagate to the root logger."""
    logger = logging.getLogger("muster.audit")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="muster.audit")
    yield
    logger.removeHandler(caplog.handler)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """A plain HTTP client for tests against a real server (redirects are for the test to follow)."""
    with httpx.Client(follow_redirects=False, timeout=30.0) as client:
        yield client


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="alice", password=PASSWORD)


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user(username="bob", password="another long passphrase")


@pytest.fixture
def public_client(db) -> Application:
    return Application.objects.create(
        name="Test client",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=REDIRECT_URI,
    )


@pytest.fixture
def confidential_client(db) -> tuple[Application, str]:
    secret = secrets.token_urlsafe(48)
    client = Application.objects.create(
        name="Confidential client",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=REDIRECT_URI,
        client_secret=secret,
    )
    return client, secret


@pytest.fixture
def shared_redis(settings) -> Iterator[tuple[str, str]]:
    """The shared cache on the Redis REDIS_URL names, under a key prefix of this test's own (deleted after; skipped
    without that Redis, failed on CI): (its URL, the prefix)."""
    url = require_redis()
    prefix = unique_prefix("test")
    use_redis(settings, url, prefix)
    yield url, prefix
    delete_redis_keys(url, prefix)


@pytest.fixture
def own_redis(tmp_path) -> Iterator[tuple[str, "subprocess.Popen[bytes]"]]:
    """A Redis of this test's own (skipped without redis-server, failed on CI): (its URL, its process)."""
    with own_redis_server(tmp_path) as running:
        yield running


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OidcProvider]:
    """One real OIDC provider process for the whole run (tests reset its controls)."""
    with OidcProvider() as provider:
        yield provider


@pytest.fixture
def upstream(settings, oidc_provider, db) -> Iterator[OidcProvider]:
    """The site signs users in at the real provider (`provider: oidc`), discovered and with clean controls."""
    from tests.upstream_flow import use_provider

    oidc_provider.reset()
    use_provider(settings, oidc_provider)
    yield oidc_provider
    discovery.forget()


# --- a real browser ---


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
    """Keep each phase's report on the test, so the `page` fixture knows whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator["Site"]:
    """The real site under uvicorn, on SQLite with local accounts, one per test module that asks for it (a module
    that needs another shape defines its own `site`)."""
    from tests.servers.site import Site

    with Site(tmp_path_factory.mktemp("site")) as running:
        yield running


@pytest.fixture
def app() -> Iterator[LoopbackApp]:
    """A native app's loopback redirect target, as the authorization requests of browser tests name it."""
    with loopback_app() as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one test module (playwright's loop must not outlive the module: Django treats a thread with
    a running event loop as async and refuses database access in it)."""
    with chromium() as running:
        yield running


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest, tmp_path) -> Iterator[Page]:
    """A page in a fresh browser profile; when the test fails, a screenshot is saved in the test's tmp dir."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    yield opened
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        shot = tmp_path / "failure.png"
        opened.screenshot(path=str(shot), full_page=True)
        report.sections.append(("browser", f"screenshot of the page at failure: {shot}\nurl: {opened.url}"))
    context.close()
