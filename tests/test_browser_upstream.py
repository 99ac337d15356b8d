"""A person in Chromium signing in at an identity provider (a real OIDC provider process), then consenting here."""

import secrets
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser_flow import start_authorization
from tests.servers.loopback_app import LoopbackApp
from tests.servers.oidc_provider import OidcProvider
from tests.servers.site import Site
from tests.support.flow import exchange

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

SUBJECT = "grace-at-idp"


@pytest.fixture(scope="module")
def site(oidc_provider: OidcProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    env = {
        "MUSTER_PROVIDER": "oidc",
        "MUSTER_OIDC_ISSUER_URL": oidc_provider.issuer,
        "MUSTER_OIDC_CLIENT_ID": "muster-browser",
        "MUSTER_OIDC_CLIENT_SECRET": "muster-browser-secret",
        "MUSTER_OIDC_ALLOW_PRIVATE_IP_OIDC": "true",
    }
    with Site(tmp_path_factory.mktemp("browser-upstream"), extra_env=env) as running:
        yield running


@pytest.fixture(scope="module")
def client_id(site: Site) -> str:
    return site.create_public_client("Notes app")


@pytest.fixture(autouse=True)
def _provider_reset(oidc_provider: OidcProvider) -> None:
    oidc_provider.reset()


def test_a_person_signs_in_at_the_provider_allows_here_and_the_app_gets_a_working_code(
    page: Page, site: Site, client_id: str, app: LoopbackApp, oidc_provider: OidcProvider, http: httpx.Client
) -> None:
    state = secrets.token_urlsafe(24)
    verifier = start_authorization(page, site.base_url, client_id, app.redirect_uri, state)
    assert page.url.startswith(oidc_provider.issuer), page.url

    page.get_by_placeholder("sub").fill(SUBJECT)
    page.get_by_role("button", name="Authorize").click()

    expect(page.get_by_role("heading", name=f"Allow Notes app to use 127.0.0.1:{site.port}?")).to_be_visible()
    expect(page.locator("dd", has_text=SUBJECT)).to_be_visible()
    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_text("You can close this window")).to_be_visible()
    arrival = app.last()
    assert arrival.one("state") == state and arrival.one("iss") == site.base_url
    tokens = exchange(site.over(http), client_id, arrival.one("code"), verifier, redirect_uri=app.redirect_uri)
    assert tokens.status_code == 200, tokens.text


def test_a_refusal_at_the_provider_reaches_the_app_as_access_denied(
    page: Page, site: Site, client_id: str, app: LoopbackApp
) -> None:
    state = secrets.token_urlsafe(24)
    start_authorization(page, site.base_url, client_id, app.redirect_uri, state)

    page.get_by_role("button", name="Deny").click()

    expect(page.get_by_text("You can close this window")).to_be_visible()
    arrival = app.last()
    assert arrival.one("error") == "access_denied"
    assert arrival.one("state") == state and arrival.one("iss") == site.base_url
    assert "code" not in arrival.query
