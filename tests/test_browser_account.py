"""The account page in Chromium: the apps a person connected, disconnecting one, signing out (everywhere)."""

import secrets
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser_flow import connect_app, sign_in
from tests.servers.loopback_app import LoopbackApp
from tests.servers.site import Site
from tests.support.flow import refresh

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture(scope="module")
def clients(site: Site) -> dict[str, str]:
    return {name: site.create_public_client(name) for name in ("Notes app", "Calendar app")}


@dataclass
class Person:
    username: str
    password: str


@pytest.fixture
def person(site: Site) -> Person:
    """An ordinary account of its own for each test."""
    username = f"carol-{secrets.token_hex(3)}"
    return Person(username, site.create_user(username))


def connect_both(page: Page, site: Site, clients: dict[str, str], app: LoopbackApp, person: Person) -> dict[str, str]:
    """The person connects both apps; each app's refresh token, by app name."""
    return {
        name: connect_app(page, site, client_id, app, person.username, person.password)["refresh_token"]
        for name, client_id in clients.items()
    }


def still_connected(site: Site, client_id: str, refresh_token: str) -> bool:
    with httpx.Client() as http:
        answer = refresh(site.over(http), client_id, refresh_token)
    assert answer.status_code in (200, 400), answer.text
    return answer.status_code == 200


def test_the_account_page_needs_a_sign_in_and_comes_back_after_it(page: Page, site: Site, person: Person) -> None:
    page.goto(f"{site.base_url}/account")

    sign_in(page, person.username, person.password)

    expect(page.get_by_role("heading", name="Your connected apps")).to_be_visible()
    expect(page.get_by_text("No apps are connected to your account.")).to_be_visible()
    assert page.url == f"{site.base_url}/account"


def test_each_connected_app_is_listed_with_where_it_returns_and_when_it_connected(
    page: Page, site: Site, clients: dict[str, str], app: LoopbackApp, person: Person
) -> None:
    connect_both(page, site, clients, app, person)

    page.goto(f"{site.base_url}/account")

    rows = page.locator("tbody tr")
    expect(rows).to_have_count(2)
    for name in clients:
        row = rows.filter(has_text=name)
        expect(row).to_contain_text("127.0.0.1")
        expect(row).to_contain_text("UTC")
        expect(row.get_by_role("button", name=f"Disconnect {name}")).to_be_visible()


def test_disconnecting_one_app_signs_out_that_app_only(
    page: Page, site: Site, clients: dict[str, str], app: LoopbackApp, person: Person
) -> None:
    tokens = connect_both(page, site, clients, app, person)
    page.goto(f"{site.base_url}/account")

    page.get_by_role("button", name="Disconnect Notes app").click()

    expect(page.get_by_role("status")).to_have_text("Notes app is disconnected.")
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_contain_text("Calendar app")
    assert not still_connected(site, clients["Notes app"], tokens["Notes app"])
    assert still_connected(site, clients["Calendar app"], tokens["Calendar app"])


def test_sign_out_everywhere_disconnects_every_app_and_ends_the_browser_session(
    page: Page, site: Site, clients: dict[str, str], app: LoopbackApp, person: Person
) -> None:
    tokens = connect_both(page, site, clients, app, person)
    page.goto(f"{site.base_url}/account")

    page.get_by_role("button", name="Sign out everywhere").click()

    expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("You are signed out everywhere: 2 apps were disconnected.")
    assert not any(still_connected(site, clients[name], token) for name, token in tokens.items())
    page.goto(f"{site.base_url}/account")
    expect(page.get_by_label("Password")).to_be_visible()


def test_signing_out_of_this_browser_leaves_the_apps_connected(
    page: Page, site: Site, clients: dict[str, str], app: LoopbackApp, person: Person
) -> None:
    tokens = connect_both(page, site, clients, app, person)
    page.goto(f"{site.base_url}/account")

    page.get_by_role("button", name="Sign out of this browser").click()

    expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()
    assert all(still_connected(site, clients[name], token) for name, token in tokens.items())


def test_a_sign_out_link_asks_before_it_signs_anyone_out(page: Page, site: Site, person: Person) -> None:
    page.goto(f"{site.base_url}/account")
    sign_in(page, person.username, person.password)

    page.goto(f"{site.base_url}/oauth/logout")

    expect(page.get_by_role("heading", name=f"Sign out of 127.0.0.1:{site.port}?")).to_be_visible()
    page.goto(f"{site.base_url}/account")
    expect(page.get_by_role("heading", name="Your connected apps")).to_be_visible()


# --- a form someone tampered with changes nothing ---


@pytest.fixture
def victim(site: Site, clients: dict[str, str], browser, app: LoopbackApp) -> tuple[str, str]:
    """Another person's connected app: (its family id, its refresh token)."""
    username = f"dave-{secrets.token_hex(3)}"
    password = site.create_user(username)
    context = browser.new_context()
    try:
        tokens = connect_app(context.new_page(), site, clients["Notes app"], app, username, password)
    finally:
        context.close()
    return site.family_of(tokens["refresh_token"]), tokens["refresh_token"]


def tamper_and_submit(page: Page, value: str | None) -> int:
    """Change the first Disconnect form's family (None: remove its CSRF token), press it; the answer's status."""
    form = page.locator("tbody form").first
    if value is None:
        form.locator("input[name=csrfmiddlewaretoken]").evaluate("input => input.remove()")
    else:
        form.locator("input[name=family]").evaluate("(input, value) => { input.value = value; }", value)
    with page.expect_response(lambda response: response.request.method == "POST") as answer:
        form.get_by_role("button").click()
    return answer.value.status


@pytest.mark.parametrize(
    ("tampering", "status", "shown"),
    [
        ("another person's app", 404, "You have no connected app like this."),
        ("not a family id", 400, "The form names no connected app."),
        ("no CSRF token", 403, "This form has expired"),
    ],
)
def test_a_tampered_disconnect_form_is_refused_and_changes_nothing(
    page: Page,
    site: Site,
    clients: dict[str, str],
    app: LoopbackApp,
    person: Person,
    victim: tuple[str, str],
    tampering: str,
    status: int,
    shown: str,
) -> None:
    own = connect_app(page, site, clients["Calendar app"], app, person.username, person.password)["refresh_token"]
    page.goto(f"{site.base_url}/account")
    value = {"another person's app": victim[0], "not a family id": "1' OR '1'='1", "no CSRF token": None}[tampering]

    assert tamper_and_submit(page, value) == status

    expect(page.get_by_role("heading", name="Nothing was changed")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text(shown)
    assert still_connected(site, clients["Notes app"], victim[1])
    assert still_connected(site, clients["Calendar app"], own)
