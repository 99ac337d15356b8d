"""Every page a person sees, in Chromium: the front door, the icon, and axe-core's accessibility checks, light and
dark."""

import json
import secrets

import pytest
from playwright.sync_api import Page, expect

from tests.browser_flow import connect_app, sign_in, start_authorization
from tests.servers.browser import accessibility_violations
from tests.servers.loopback_app import LoopbackApp
from tests.servers.site import Site

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture(scope="module")
def client_id(site: Site) -> str:
    return site.create_public_client("Notes app")


def test_the_front_door_shows_the_mcp_url_and_how_to_connect_each_client(page: Page, site: Site) -> None:
    mcp_url = f"{site.base_url}/mcp"

    answer = page.goto(f"{site.base_url}/")

    assert answer is not None and answer.status == 200
    expect(page.locator("#mcp-url")).to_have_text(mcp_url)
    expect(page.get_by_text(f"claude mcp add --transport http muster {mcp_url}")).to_be_visible()
    for client in ("Claude Code", "VS Code", "Cursor", "ChatGPT", "MCP Inspector"):
        expect(page.get_by_role("heading", name=client)).to_be_visible()
    expect(page.get_by_text(f"npx -y mcp-remote {mcp_url}")).to_be_visible()
    expect(page.get_by_text("only reachable from this computer")).to_be_visible()


def test_the_front_door_links_to_the_discovery_documents_and_the_admin(page: Page, site: Site) -> None:
    page.goto(f"{site.base_url}/")

    page.get_by_role("link", name="Authorization server metadata").click()

    assert json.loads(page.locator("body").inner_text())["issuer"] == site.base_url
    page.go_back()
    page.get_by_role("link", name="Administration").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()


def test_pages_and_the_admin_have_an_icon(page: Page, site: Site) -> None:
    page.goto(f"{site.base_url}/oauth/login")
    declared = page.locator("link[rel=icon]").get_attribute("href")

    icons = [page.request.get(f"{site.base_url}{declared}"), page.request.get(f"{site.base_url}/favicon.ico")]

    assert [icon.status for icon in icons] == [200, 200]
    assert icons[0].headers["content-type"].startswith("image/svg+xml")
    assert icons[1].headers["content-type"] == "image/x-icon"


def test_an_unknown_address_gets_a_page_that_leads_back_to_the_front_door(page: Page, site: Site) -> None:
    answer = page.goto(f"{site.base_url}/no/such/page")

    assert answer is not None and answer.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    page.get_by_role("link", name=f"Go to the front page of 127.0.0.1:{site.port}").click()
    expect(page.locator("#mcp-url")).to_be_visible()


def test_dark_mode_is_honoured(page: Page, site: Site) -> None:
    page.goto(f"{site.base_url}/oauth/login")
    light = page.evaluate("getComputedStyle(document.body).backgroundColor")

    page.emulate_media(color_scheme="dark")

    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != light


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_a_person_sees_passes_axe_core(
    page: Page, site: Site, client_id: str, app: LoopbackApp, scheme: str
) -> None:
    page.emulate_media(color_scheme=scheme)
    username = f"frank-{secrets.token_hex(3)}"
    password = site.create_user(username)
    found: dict[str, list[str]] = {}

    def check(name: str) -> None:
        found[name] = accessibility_violations(page)

    page.goto(f"{site.base_url}/")
    check("front door")
    start_authorization(page, site.base_url, client_id, app.redirect_uri, secrets.token_urlsafe(24))
    check("sign-in")
    sign_in(page, username, "wrong password")
    check("sign-in after a wrong password")
    sign_in(page, username, password)
    check("consent")
    connect_app(page, site, client_id, app, username, password)
    page.goto(f"{site.base_url}/account")
    check("account")
    page.goto(f"{site.base_url}/oauth/logout")
    check("sign-out question")
    page.get_by_role("button", name="Sign out").click()
    check("signed out")
    page.goto(f"{site.base_url}/oauth/authorize?client_id=unknown")
    check("authorization error")
    page.goto(f"{site.base_url}/no/such/page")
    check("not found")
    page.goto(f"{site.base_url}/oauth/login")
    page.context.clear_cookies()
    sign_in(page, username, password)
    check("form expired")

    assert found == {name: [] for name in found}
