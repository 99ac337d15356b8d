"""The admin in Chromium, as an operator meets it: sign in, register a client, revoke a token family."""

import secrets

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser_flow import connect_app
from tests.servers.loopback_app import LoopbackApp
from tests.servers.site import Site
from tests.support.flow import refresh

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture
def operator(page: Page, site: Site) -> Page:
    """The operator, signed in to the admin through its own login page."""
    page.goto(f"{site.base_url}/admin")
    page.get_by_label("Username").fill(site.username)
    page.get_by_label("Password").fill(site.password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    return page


def connected_elsewhere(browser: Browser, site: Site, client_id: str, app: LoopbackApp) -> str:
    """A person connects the app in their own browser; the app's refresh token."""
    username = f"erin-{secrets.token_hex(3)}"
    password = site.create_user(username)
    context = browser.new_context()
    try:
        return connect_app(context.new_page(), site, client_id, app, username, password)["refresh_token"]
    finally:
        context.close()


def test_admin_without_a_slash_leads_to_the_admin_sign_in(page: Page, site: Site) -> None:
    page.goto(f"{site.base_url}/admin")

    assert page.url == f"{site.base_url}/admin/login/?next=/admin/"
    expect(page.get_by_role("button", name="Log in")).to_be_visible()


def test_an_operator_signs_in_and_sees_the_server_named(operator: Page, site: Site) -> None:
    expect(operator.get_by_role("link", name=f"127.0.0.1:{site.port} administration")).to_be_visible()
    expect(operator.get_by_role("link", name="Token families")).to_be_visible()


def test_an_operator_registers_a_client_that_a_person_can_then_connect(
    operator: Page, site: Site, browser: Browser, app: LoopbackApp
) -> None:
    operator.goto(f"{site.base_url}/admin/oauth2_provider/application/add/")
    client_id = operator.locator("#id_client_id").input_value()
    operator.get_by_role("textbox", name="Redirect URIs:", exact=True).fill("http://127.0.0.1/callback")
    operator.get_by_label("Public").check()
    operator.get_by_label("Authorization code").check()
    operator.locator("#id_name").fill("Portal")

    operator.get_by_role("button", name="Save", exact=True).click()

    expect(operator.locator(".messagelist")).to_contain_text("was added successfully")
    expect(operator.locator("#result_list")).to_contain_text("Portal")
    assert connected_elsewhere(browser, site, client_id, app)


def test_an_operator_revokes_a_token_family_and_the_app_can_no_longer_refresh(
    operator: Page, site: Site, browser: Browser, app: LoopbackApp
) -> None:
    client_id = site.create_public_client(f"Revoked app {secrets.token_hex(2)}")
    refresh_token = connected_elsewhere(browser, site, client_id, app)
    family = site.family_of(refresh_token)
    operator.goto(f"{site.base_url}/admin/oauth_server/tokenfamily/?q={family}")

    operator.locator("#result_list tbody tr").filter(has_text=family).get_by_role("checkbox").check()
    operator.locator("select[name=action]").select_option(label="Revoke the selected token families")
    operator.get_by_role("button", name="Go", exact=True).click()

    expect(operator.locator(".messagelist")).to_contain_text("Revoked 1 token families.")
    with httpx.Client() as http:
        answer = refresh(site.over(http), client_id, refresh_token)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant", answer.text
